"""A fake of the MongoDB server the gcp target's setup talks to (through a port-forward): users and
roles in ``admin``, logins checked against their passwords, the user-management commands with
pymongo's call shape (``client["admin"].command(name, value, **fields)``), and MongoDB's errors
(``pymongo.errors.OperationFailure``, code 18 for a failed login). Every command is recorded in
the :class:`~tests.gcp.fakes.FakeCloud` (client ``mongo``), passwords left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

MUTATING = {"createUser", "updateUser", "createRole", "updateRole", "dropUser"}


@dataclass
class FakeMongo:
    cloud: Any = None  # FakeCloud: records the commands
    running: bool = False  # helm/sacred deployed
    root: tuple[str, str] | None = None  # (user, password) it was initialised with
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"pwd", "roles"}
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"privileges", "roles"}
    logins: list[str] = field(default_factory=list)

    def client(self, url: str) -> FakeMongoClient:
        parts = urlsplit(url)
        return FakeMongoClient(self, unquote(parts.username or ""), unquote(parts.password or ""))

    def _login(self, user: str, password: str) -> None:
        if not self.running:
            raise ServerSelectionTimeoutError("127.0.0.1:45678: [Errno 111] Connection refused")
        self.logins.append(user)
        if self.root is None:  # initialised with the first credentials it sees (as from the root Secret)
            self.root = (user, password)
        if self.root == (user, password) or (user in self.users and self.users[user]["pwd"] == password):
            return
        raise OperationFailure("Authentication failed.", code=18)


@dataclass
class FakeMongoClient:
    server: FakeMongo
    user: str
    password: str
    closed: bool = False

    def __getitem__(self, db: str) -> FakeDatabase:
        return FakeDatabase(self, db)

    def close(self) -> None:
        self.closed = True

    def root_only_denied(self, command: str) -> bool:
        """User management needs the root user (userAdmin); the others may only ping."""
        return command != "ping" and self.server.root is not None and self.user != self.server.root[0]


@dataclass
class FakeDatabase:
    client: FakeMongoClient
    name: str

    def command(self, command: str, value: Any = 1, **fields: Any) -> dict[str, Any]:
        server, client = self.client.server, self.client
        if server.cloud is not None:
            shown = {k: v for k, v in fields.items() if k != "pwd"}
            server.cloud.record("mongo", command, {"value": value, **shown, "as": client.user},
                                mutating=command in MUTATING)  # fmt: skip
        server._login(client.user, client.password)
        if command == "ping":
            return {"ok": 1}
        if client.root_only_denied(command):
            raise OperationFailure(f"not authorized on admin to execute command {{ {command}: ... }}", code=13)
        if command == "usersInfo":
            found = server.users.get(value["user"])
            return {"users": [] if found is None else [{"user": value["user"], "db": "admin", "roles": found["roles"]}]}
        if command == "rolesInfo":
            found = server.roles.get(value["role"])
            if found is None:
                return {"roles": []}
            info = {"role": value["role"], "db": "admin", "roles": found["roles"]}
            if fields.get("showPrivileges"):
                info["privileges"] = found["privileges"]
            return {"roles": [info]}
        if command in ("createUser", "updateUser"):
            if (command == "createUser") == (value in server.users):
                raise OperationFailure(f"User {value}@admin {'already exists' if value in server.users else 'not found'}", code=11)
            server.users[value] = {"pwd": fields["pwd"], "roles": list(fields["roles"])}
            return {"ok": 1}
        if command in ("createRole", "updateRole"):
            server.roles[value] = {"privileges": list(fields["privileges"]), "roles": list(fields["roles"])}
            return {"ok": 1}
        raise AssertionError(f"unexpected MongoDB command {command}")
