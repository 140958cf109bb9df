import os

# workflows run in Temporal's sandbox in every test and in the workers the tests start, so a
# non-deterministic call in workflow code fails here (production workers run without it)
os.environ["ZAPFLOW_WORKFLOW_SANDBOX"] = "true"

pytest_plugins = [
    "tests.fixtures.network",
    "tests.fixtures.stack",
    "tests.fixtures.provider_server",
    "tests.fixtures.app",
    "tests.fixtures.browser",
    "tests.fixtures.openai_server",
    "tests.fixtures.timing",
]
