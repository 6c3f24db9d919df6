from seedlab.cli import main

raise SystemExit(main())
