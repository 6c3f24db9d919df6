"""seedlab: does my result survive a change of random seed?

The library behind the seedlab app: a prediction store (``seedlab.store``), importers for
the formats the seed studies released (``seedlab.importers``), the statistics of those
studies (``seedlab.stats``), plotly figure builders (``seedlab.figures``) and a fine-tuning
runner (``seedlab.runs``).
"""

__version__ = "0.1.0"
