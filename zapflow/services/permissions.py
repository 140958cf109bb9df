"""What each role may do: every API route requires one ``Permission``; a role holds a set of them.

Routes declare theirs where they are declared (``Requires(Permission.FLOWS_WRITE)`` in
``api/deps.py``) and the server checks it on every request. A new role (a supervisor) is a new
``UserRole`` with its set here; no route changes. SECURITY.md holds the matrix per route.
"""

from __future__ import annotations

from enum import StrEnum

from zapflow.models import UserRole


class Permission(StrEnum):
    COMPANY_READ = "company:read"
    COMPANY_MANAGE = "company:manage"  # name, hours, AI prompt, settings (rate limits)
    USERS_READ = "users:read"
    USERS_MANAGE = "users:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    INSTANCES_READ = "instances:read"  # without the webhook URL, verify token and JWT key
    INSTANCES_MANAGE = "instances:manage"  # connect, change, delete; read the webhook's secrets
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    CONTACTS_DELETE = "contacts:delete"  # erases the contact's conversations too
    CONTACTS_EXPORT = "contacts:export"
    CONTACTS_IMPORT = "contacts:import"
    CONTACTS_MERGE = "contacts:merge"  # moves one contact's everything to another, deletes it
    NOTES_READ = "notes:read"
    NOTES_WRITE = "notes:write"  # write notes, change or delete one's own
    NOTES_MANAGE = "notes:manage"  # change or delete anyone's note
    CONVERSATIONS_READ = "conversations:read"  # threads, messages, search, similar
    CONVERSATIONS_WRITE = "conversations:write"  # send, assign, pause, close, mark read
    EVENTS_READ = "events:read"  # the live event streams (SSE)
    FOLLOWUPS_READ = "followups:read"
    FOLLOWUPS_WRITE = "followups:write"
    FUNNELS_READ = "funnels:read"
    FUNNELS_MANAGE = "funnels:manage"
    DEALS_READ = "deals:read"
    DEALS_WRITE = "deals:write"
    FLOWS_READ = "flows:read"  # flows, their diagrams and runs
    FLOWS_WRITE = "flows:write"  # author, publish, archive, simulate
    FLOW_RUNS_WRITE = "flow_runs:write"  # start a published flow for a contact, cancel a run
    OPS_MANAGE = "ops:manage"  # queues, dead letters and their replay
    ACCOUNT_OWN = "account:own"  # one's own profile, availability, password and sessions
    TEAMS_READ = "teams:read"
    TEAMS_MANAGE = "teams:manage"  # create, rename, route, members and their capacity
    CANNED_READ = "canned:read"  # the company's saved replies and one's own
    CANNED_WRITE = "canned:write"  # one's own saved replies
    CANNED_MANAGE = "canned:manage"  # the company's saved replies
    TEMPLATES_READ = "templates:read"  # the numbers' message templates (the composer picks one)
    TEMPLATES_MANAGE = "templates:manage"  # sync, create and delete them at Meta
    CAMPAIGNS_READ = "campaigns:read"  # broadcasts, their recipients and stats
    CAMPAIGNS_MANAGE = "campaigns:manage"  # create, pause, resume, cancel broadcasts
    OPT_OUTS_MANAGE = "opt_outs:manage"  # record or lift a contact's opt-out
    REPORTS_READ = "reports:read"  # the whole team's figures: supervisors and admins
    MEDIA_READ = "media:read"  # the company's uploaded files (to show or download them)
    # upload a file (a canned response's or a message's media), delete one's own
    MEDIA_WRITE = "media:write"
    MEDIA_MANAGE = "media:manage"  # delete anyone's file


AGENT_PERMISSIONS = frozenset(
    {
        Permission.COMPANY_READ,
        Permission.USERS_READ,
        Permission.INSTANCES_READ,
        Permission.CONTACTS_READ,
        Permission.CONTACTS_WRITE,
        Permission.CONTACTS_MERGE,
        Permission.NOTES_READ,
        Permission.NOTES_WRITE,
        Permission.CONVERSATIONS_READ,
        Permission.CONVERSATIONS_WRITE,
        Permission.EVENTS_READ,
        Permission.FOLLOWUPS_READ,
        Permission.FOLLOWUPS_WRITE,
        Permission.FUNNELS_READ,
        Permission.DEALS_READ,
        Permission.DEALS_WRITE,
        Permission.FLOWS_READ,
        Permission.FLOW_RUNS_WRITE,
        Permission.ACCOUNT_OWN,
        Permission.TEAMS_READ,
        Permission.CANNED_READ,
        Permission.CANNED_WRITE,
        Permission.TEMPLATES_READ,
        Permission.CAMPAIGNS_READ,
        Permission.OPT_OUTS_MANAGE,
        Permission.MEDIA_READ,
        Permission.MEDIA_WRITE,
    }
)
# a supervisor runs the floor: teams and their routing, the company's saved replies, notes,
# the reports, anyone's uploaded files
SUPERVISOR_PERMISSIONS = AGENT_PERMISSIONS | {
    Permission.MEDIA_MANAGE,
    Permission.REPORTS_READ,
    Permission.TEAMS_MANAGE,
    Permission.CANNED_MANAGE,
    Permission.NOTES_MANAGE,
}
ROLE_PERMISSIONS: dict[UserRole, frozenset[Permission]] = {
    UserRole.ADMIN: frozenset(Permission),
    UserRole.SUPERVISOR: SUPERVISOR_PERMISSIONS,
    UserRole.AGENT: AGENT_PERMISSIONS,
}
# a credential never grants more than its user holds (services/auth.py)
ROLE_RANK = {UserRole.AGENT: 0, UserRole.SUPERVISOR: 1, UserRole.ADMIN: 2}


def role_can(role: UserRole, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]
