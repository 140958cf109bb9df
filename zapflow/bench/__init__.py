"""The benchmark suite behind ``zapflow bench``: scenarios run on a fresh embedded stack, with the
load generated from a separate process, results in ``bench/results/`` and ``bench/REPORT.md``."""

SCENARIO_NAMES = ("webhook-ack", "pipeline", "crm-read", "search", "followup-timers")
