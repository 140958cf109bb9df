"""The benchmark suite behind ``zapflow bench``: scenarios run on a fresh embedded stack, with the
load generated from a separate process, results in ``bench/results/`` and ``bench/REPORT.md``."""

SCENARIO_NAMES = ("webhook-ack", "pipeline", "crm-read", "followup-timers", "search", "campaign")
# not in a run of every scenario (`make bench`): a campaign of 100,000 at 80/s takes 21 minutes
ON_REQUEST = ("campaign",)
BUDGET_SECONDS = 19 * 60.0  # a whole run: `make bench` must end within 20 minutes
