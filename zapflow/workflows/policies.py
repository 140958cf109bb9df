"""Named retry policies and timeouts shared by the workflows."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# database work: transient outages are retried for a long while, quickly at first
DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
DATABASE_TIMEOUT = timedelta(seconds=30)

# provider sends: 1 s, 2 s, 4 s, 8 s, then every 10 s (a 429 after its Retry-After), 80 attempts
# (~13 min), then a dead letter. Sends go out in order, one at a time, so a conversation's later
# replies wait behind a refused one: the backoff stays short, the window long.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=80,
    non_retryable_error_types=["PermanentSendError", "DeliveryUnknown"],
)
# above the provider HTTP timeout (ZAPFLOW_PROVIDER_TIMEOUT_SECONDS, 10 s by default)
SEND_TIMEOUT = timedelta(seconds=15)

# mark read + typing indicator: worth a few quick tries only (the indicator lasts 25 s)
MARK_READ_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_attempts=3,
    non_retryable_error_types=["PermanentSendError"],
)

# embeddings: a failing or rate-limiting provider is retried with growing delays; a request the
# provider rejects, or a missing local model, is not
EMBEDDING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["EmbeddingRejected", "ModelNotInstalled"],
)
EMBEDDING_TIMEOUT = timedelta(minutes=2)
# the conversation never waits longer than this for its embeddings (a missing embeddings worker,
# a long outage): what did not make it is left to `zapflow embeddings backfill`
EMBEDDING_SCHEDULE_TO_CLOSE = timedelta(minutes=10)

# the AI agent's model calls: a rate-limiting or failing provider is retried for ~2 minutes, a
# request it rejects (bad key, unknown model) is not; either way the failure is a dead letter
AI_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=["AIRejected"],
)
# above the model HTTP timeout (ZAPFLOW_AI_TIMEOUT_SECONDS, 30 s by default)
AI_TIMEOUT = timedelta(seconds=45)

# a campaign's batch: at most ~10 s of sends at its pace, longer when throttled; it heartbeats
# every few seconds, so a killed worker's batch is retried within the heartbeat timeout
CAMPAIGN_BATCH_TIMEOUT = timedelta(minutes=15)
CAMPAIGN_BATCH_HEARTBEAT = timedelta(seconds=10)
