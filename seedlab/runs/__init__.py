"""Background fine-tuning runs: job specs, the persistent queue, workers, the trainer.

Flow: a grid spec (``spec.GridSpec``) expands into ``JobSpec`` s (one per size x pretraining
seed x fine-tuning seed), ``queue.submit`` stores them in the catalogue's ``jobs`` table,
``worker.Worker`` claims them one at a time and runs ``trainer.run_job``, which writes a
run folder atomically and registers its predictions in the store. ``executor`` starts and
finds the background worker pool (local GPUs now; a cluster backend can be added later).
"""
