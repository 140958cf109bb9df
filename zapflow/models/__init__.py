"""The database schema: one SQLModel table per module, all re-exported here.

Importing this package registers every table on ``SQLModel.metadata`` (what Alembic compares).
"""

from ._fields import utc_now
from .api_key import ApiKey
from .canned_response import CannedResponse, CannedResponseBase
from .company import Company, CompanyBase
from .contact import Contact, ContactBase
from .conversation import Conversation, ConversationStatus
from .conversation_embedding import EMBEDDING_DIMENSIONS, ConversationEmbedding
from .dead_letter import DeadLetter, DeadLetterKind, DeadLetterStatus
from .deal import Deal, DealBase, DealStatus
from .deal_stage_change import DealStageChange
from .embedding_queue import EmbeddingQueueItem
from .event_outbox import EventOutbox
from .flow import Flow, FlowBase, FlowStatus
from .flow_run import FlowRun, FlowRunStatus
from .flow_version import FlowVersion
from .followup import FollowUp, FollowUpBase, FollowUpStatus
from .funnel import Funnel, FunnelBase
from .inbox_event import InboxEvent, InboxEventStatus, InboxEventType
from .message import Message, MessageDirection, MessageSender, MessageStatus, MessageType
from .note import Note, NoteBase
from .stage import Stage, StageBase
from .team import RoutingMode, Team, TeamBase
from .team_member import TeamMember
from .user import Availability, User, UserBase, UserRole
from .user_session import UserSession
from .user_token import UserToken, UserTokenKind
from .whatsapp_instance import (
    InstanceStatus,
    WhatsAppInstance,
    WhatsAppInstanceBase,
    WhatsAppProvider,
)

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "ApiKey",
    "Availability",
    "CannedResponse",
    "CannedResponseBase",
    "Company",
    "CompanyBase",
    "Contact",
    "ContactBase",
    "Conversation",
    "ConversationEmbedding",
    "ConversationStatus",
    "DeadLetter",
    "DeadLetterKind",
    "DeadLetterStatus",
    "Deal",
    "DealBase",
    "DealStageChange",
    "DealStatus",
    "EmbeddingQueueItem",
    "EventOutbox",
    "Flow",
    "FlowBase",
    "FlowRun",
    "FlowRunStatus",
    "FlowStatus",
    "FlowVersion",
    "FollowUp",
    "FollowUpBase",
    "FollowUpStatus",
    "Funnel",
    "FunnelBase",
    "InboxEvent",
    "InboxEventStatus",
    "InboxEventType",
    "InstanceStatus",
    "Message",
    "MessageDirection",
    "MessageSender",
    "MessageStatus",
    "MessageType",
    "Note",
    "NoteBase",
    "RoutingMode",
    "Stage",
    "StageBase",
    "Team",
    "TeamBase",
    "TeamMember",
    "User",
    "UserBase",
    "UserRole",
    "UserSession",
    "UserToken",
    "UserTokenKind",
    "WhatsAppInstance",
    "WhatsAppInstanceBase",
    "WhatsAppProvider",
    "utc_now",
]
