"""Broadcast campaigns, one module per concern:

- ``definition``: creating one (instance, audience, message, schedule, pacing), checked first,
  and editing it before it starts;
- ``content``: what each recipient gets (template parameters from contact fields, or text);
- ``audience``: the stored filter, the count before creating, the snapshot when it starts;
- ``sending``: due recipients, the messaging tier's room, a batch's messages queued in bulk,
  claimed before sending and recorded a chunk at a time
  (``client_id=campaign:<campaign>:<contact>``);
- ``progress``: status changes, counts and the ``campaign.progress`` event, the end;
- ``control``: pause, resume, cancel, reading;
- ``stats``: rates and reasons.

The names callers use are re-exported here.
"""

from zapflow.services.campaigns.audience import (
    addressable,
    audience_counts,
    audience_dict,
    audience_filter,
    count_audience,
    sends_by_bsuid,
    snapshot,
    snapshot_when_due,
)
from zapflow.services.campaigns.content import content_for, parameter_values, render_text, resolve
from zapflow.services.campaigns.control import ACTIONS, control, get_campaign, list_campaigns
from zapflow.services.campaigns.definition import NewCampaign, create_campaign, edit_campaign
from zapflow.services.campaigns.progress import (
    FINISHED,
    STOPPED,
    announce,
    campaign_event,
    finish,
    progress,
    set_status,
)
from zapflow.services.campaigns.sending import (
    TIERS,
    Due,
    Outcome,
    Prepared,
    claim,
    client_id,
    due_recipients,
    hours_wait,
    queue_messages,
    record,
    tier_room,
)
from zapflow.services.campaigns.stats import stats

__all__ = [
    "ACTIONS", "FINISHED", "STOPPED", "TIERS", "Due", "NewCampaign", "Outcome", "Prepared",
    "addressable", "announce", "audience_counts",
    "audience_dict", "audience_filter", "campaign_event", "claim", "client_id", "content_for",
    "control", "count_audience", "create_campaign", "due_recipients", "edit_campaign", "finish",
    "get_campaign", "hours_wait", "list_campaigns", "parameter_values", "progress",
    "queue_messages", "record", "render_text", "resolve", "sends_by_bsuid", "set_status",
    "snapshot", "snapshot_when_due", "stats", "tier_room",
]  # fmt: skip
