pytest_plugins = [
    "tests.fixtures.network",
    "tests.fixtures.stack",
    "tests.fixtures.provider_server",
    "tests.fixtures.app",
    "tests.fixtures.browser",
    "tests.fixtures.openai_server",
    "tests.fixtures.timing",
]
