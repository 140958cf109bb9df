"""The benchmark suite behind ``zapflow bench``: scenarios run on a fresh embedded stack, with the
load generated from a separate process, results in ``bench/results/`` and ``bench/REPORT.md``."""

SCENARIO_NAMES = ("webhook-ack", "pipeline", "crm-read", "followup-timers", "search")
BUDGET_SECONDS = 19 * 60.0  # a whole run: `make bench` must end within 20 minutes
