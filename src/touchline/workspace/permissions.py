"""Permissions a role can grant, and the actor every service call is made by."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from touchline.kit.errors import InvalidInputError, PermissionDeniedError


class Permission(StrEnum):
    VIEW_CUSTOMERS = "view_customers"
    EDIT_CUSTOMERS = "edit_customers"
    EMAIL_SYNC = "email_sync"
    EMAIL_ON_MY_BEHALF = "email_on_my_behalf"
    SEND_EMAIL = "send_email"
    ADMIN_ACCESS = "admin_access"


PERMISSION_LABELS: dict[Permission, str] = {
    Permission.VIEW_CUSTOMERS: "See companies, contacts and their timelines",
    Permission.EDIT_CUSTOMERS: "Create, edit, import and delete companies and contacts",
    Permission.EMAIL_SYNC: "See the Email tab and connect a mailbox",
    Permission.EMAIL_ON_MY_BEHALF: "May make their own address public for colleagues to send from",
    Permission.SEND_EMAIL: "Send emails, templates and sequences to endusers",
    Permission.ADMIN_ACCESS: "Workspace settings, users, roles and the audit log",
}

DEFAULT_ROLES: dict[str, frozenset[Permission]] = {
    "Admin": frozenset(Permission),
    "Member": frozenset(
        {
            Permission.VIEW_CUSTOMERS,
            Permission.EDIT_CUSTOMERS,
            Permission.EMAIL_SYNC,
            Permission.EMAIL_ON_MY_BEHALF,
            Permission.SEND_EMAIL,
        }
    ),
    "Viewer": frozenset({Permission.VIEW_CUSTOMERS}),
}


def parse_permissions(names: list[str]) -> frozenset[Permission]:
    known = {permission.value for permission in Permission}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown permission(s) {', '.join(unknown)}; known ones are {', '.join(sorted(known))}"
        )
    return frozenset(Permission(name) for name in names)


@dataclass(frozen=True)
class Actor:
    """Who is acting, in which workspace, with which permissions. Every service call takes one."""

    workspace_id: uuid.UUID
    user_id: uuid.UUID | None
    label: str
    permissions: frozenset[Permission]

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise PermissionDeniedError(
                f"your role does not have the {permission.value!r} permission; ask a workspace admin"
            )

    @classmethod
    def operator(cls, workspace_id: uuid.UUID) -> Actor:
        """The operator at the command line: every permission, inside one workspace."""
        return cls(workspace_id, None, "operator (command line)", frozenset(Permission))
