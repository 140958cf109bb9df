"""The database schema: one SQLModel table per module, all re-exported here.

Importing this package registers every table on ``SQLModel.metadata`` (what Alembic compares).
"""

from ._fields import utc_now
from .api_key import ApiKey
from .campaign import Campaign, CampaignStatus
from .campaign_recipient import CampaignRecipient, RecipientStatus
from .canned_response import CannedResponse
from .company import Company
from .contact import Contact
from .contact_identity import ContactIdentity, IdentityKind
from .contact_merge import ContactMerge
from .conversation import Conversation, ConversationPriority, ConversationStatus
from .conversation_embedding import EMBEDDING_DIMENSIONS, ConversationEmbedding
from .conversation_resolution import ConversationResolution, CsatStatus
from .dead_letter import DeadLetter, DeadLetterKind, DeadLetterStatus
from .deal import Deal, DealStatus
from .deal_stage_change import DealStageChange
from .embedding_queue import EmbeddingQueueItem
from .event_outbox import EventOutbox
from .flow import Flow, FlowStatus
from .flow_run import FlowRun, FlowRunStatus
from .flow_version import FlowVersion
from .followup import FollowUp, FollowUpStatus
from .funnel import Funnel
from .inbox_event import InboxEvent, InboxEventStatus, InboxEventType
from .media_file import MediaFile
from .media_file_content import MediaFileContent
from .message import (
    BODY_TSVECTOR,
    Message,
    MessageDirection,
    MessageSender,
    MessageStatus,
    MessageType,
)
from .message_rollup import MessageRollup
from .note import Note
from .opt_out import OptOut
from .rollup_watermark import RollupWatermark
from .sla_target import SlaKind, SlaStatus, SlaTarget
from .stage import Stage
from .system_note import SystemNote, SystemNoteKind
from .team import RoutingMode, SlaEscalation, Team
from .team_member import TeamMember
from .template import Template, TemplateStatus
from .user import Availability, User, UserRole
from .user_session import UserSession
from .user_token import UserToken, UserTokenKind
from .whatsapp_instance import (
    InstanceStatus,
    WhatsAppInstance,
    WhatsAppProvider,
)

__all__ = [
    "BODY_TSVECTOR",
    "EMBEDDING_DIMENSIONS",
    "ApiKey",
    "Availability",
    "Campaign",
    "CampaignRecipient",
    "CampaignStatus",
    "CannedResponse",
    "Company",
    "Contact",
    "ContactIdentity",
    "ContactMerge",
    "Conversation",
    "ConversationEmbedding",
    "ConversationPriority",
    "ConversationResolution",
    "ConversationStatus",
    "CsatStatus",
    "DeadLetter",
    "DeadLetterKind",
    "DeadLetterStatus",
    "Deal",
    "DealStageChange",
    "DealStatus",
    "EmbeddingQueueItem",
    "EventOutbox",
    "Flow",
    "FlowRun",
    "FlowRunStatus",
    "FlowStatus",
    "FlowVersion",
    "FollowUp",
    "FollowUpStatus",
    "Funnel",
    "IdentityKind",
    "InboxEvent",
    "InboxEventStatus",
    "InboxEventType",
    "InstanceStatus",
    "MediaFile",
    "MediaFileContent",
    "Message",
    "MessageDirection",
    "MessageRollup",
    "MessageSender",
    "MessageStatus",
    "MessageType",
    "Note",
    "OptOut",
    "RecipientStatus",
    "RollupWatermark",
    "RoutingMode",
    "SlaEscalation",
    "SlaKind",
    "SlaStatus",
    "SlaTarget",
    "Stage",
    "SystemNote",
    "SystemNoteKind",
    "Team",
    "TeamMember",
    "Template",
    "TemplateStatus",
    "User",
    "UserRole",
    "UserSession",
    "UserToken",
    "UserTokenKind",
    "WhatsAppInstance",
    "WhatsAppProvider",
    "utc_now",
]
