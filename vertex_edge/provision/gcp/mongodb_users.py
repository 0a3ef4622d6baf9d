"""MongoDB's least-privilege users on the gcp target, created by the root user.

* ``sacred-writer`` - ``readWrite`` on the Sacred database only: training and ``edge.py
  experiments`` (:func:`vertex_edge.gcp.sacred.mongo_url_via_port_forward`). Its password never
  enters the cluster.
* ``omniboard`` - the role ``omniboardReader``: ``read`` on the Sacred database, plus writes to
  Omniboard's own view settings (its ``omniboard.*`` collections: column choices, time zone), so
  Omniboard works but cannot change or delete a run.

Each password is the one Secret Manager holds (:mod:`.mongodb`). The step talks to MongoDB as
root through a ``kubectl port-forward`` (passwords go over the MongoDB protocol, never on a
command line). Its check is read-only: the role, each user, its roles and - by logging in with
it - its password; apply creates or updates what differs, then restarts Omniboard (it does
not retry a login that failed, e.g. before its user existed). The users live in MongoDB's volume:
they go with it (teardown, :class:`~.mongodb.MongoVolumeItem`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from vertex_edge.errors import CloudError
from vertex_edge.gcp.names import READER, ROOT, WRITER, MongoAccount
from vertex_edge.gcp.sacred import mongo_url
from vertex_edge.gcp.secret import read_password
from vertex_edge.provision.engine import Action, Check
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.provision.gcp.resource import GcpStep
from vertex_edge.state import Resource

T = TypeVar("T")

READER_ROLE = "omniboardReader"
#: Omniboard's own collections (its view settings), the only ones its user may write
OMNIBOARD_COLLECTIONS = (
    "omniboard.settings", "omniboard.columns", "omniboard.config.columns", "omniboard.custom.columns",
    "omniboard.metric.columns",
)  # fmt: skip
OMNIBOARD_ACTIONS = ("createIndex", "find", "insert", "remove", "update")
AUTH_FAILED = 18  # MongoDB's error code for a failed login
ROLLOUT_TIMEOUT = "5m"


def user_roles(env: GcpEnv) -> dict[str, list[dict[str, str]]]:
    """The roles each user must have, exactly."""
    db = env.names.mongodb_db
    return {WRITER: [{"role": "readWrite", "db": db}], READER: [{"role": READER_ROLE, "db": "admin"}]}


def reader_role(env: GcpEnv) -> dict[str, Any]:
    """``omniboardReader``: read on the Sacred database, writes to Omniboard's settings only."""
    db = env.names.mongodb_db
    return {
        "privileges": [{"resource": {"db": db, "collection": c}, "actions": list(OMNIBOARD_ACTIONS)}
                       for c in OMNIBOARD_COLLECTIONS],
        "roles": [{"role": "read", "db": db}],
    }  # fmt: skip


def _mongo(what: str, fn: Callable[[], T]) -> T:
    """A MongoDB call; its errors become :class:`CloudError` (no URL, so no password, in them)."""
    from pymongo.errors import PyMongoError  # deferred: see vertex_edge.gcp.sacred.mongo_client

    try:
        return fn()
    except PyMongoError as exc:
        raise CloudError(f"MongoDB: {what}: {exc}", hint="is helm/sacred running? 'kubectl get pods -n sacred'") from None


@contextlib.contextmanager
def mongo_session(env: GcpEnv) -> Iterator[tuple[Any, int]]:
    """(the root user's admin database, the local port) through a port-forward to MongoDB."""
    names = env.names
    password = read_password(env.gcp, names, ROOT)
    with env.kube().port_forward(names.namespace, names.mongodb_service, names.mongodb_port) as forward:
        client = env.mongo(mongo_url(names.mongodb_user, password, forward.port, db="admin"))
        try:
            yield client["admin"], forward.port
        finally:
            client.close()


def _normal_privileges(privileges: list[dict[str, Any]]) -> set[tuple[str, str, frozenset[str]]]:
    return {(str(p["resource"].get("db")), str(p["resource"].get("collection")), frozenset(p["actions"]))
            for p in privileges}  # fmt: skip


def _normal_roles(roles: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(str(r["role"]), str(r["db"])) for r in roles}


class MongoUsersStep(GcpStep):
    key = "mongodb_users"
    title = "MongoDB users (least privilege)"

    @property
    def users(self) -> list[MongoAccount]:
        return [self.names.account(WRITER), self.names.account(READER)]

    def expected(self) -> Resource:
        roles = user_roles(self.env)
        return Resource(
            kind="mongodb-users",
            name=", ".join(a.user for a in self.users),
            location=f"{self.names.cluster}/{self.names.namespace}/{self.names.mongodb_service}",
            details={a.user: {"roles": [f"{r['role']}@{r['db']}" for r in roles[a.role]], "purpose": a.purpose,
                              "password_secret": a.secret_path} for a in self.users},  # fmt: skip
        )

    def describe(self) -> str:
        return ", ".join(f"{a.user} ({a.purpose})" for a in self.users) + f" in {self.names.mongodb_service}"

    def pending(self) -> str | None:
        if not self.env.cluster_ready:
            return "once the cluster runs"
        if not self.env.sacred_ready:
            return "once MongoDB runs (helm/sacred)"
        if not {ROOT, WRITER, READER} <= self.env.passwords_ready:
            return "once Secret Manager holds the passwords"
        return super().pending()

    # ---------------------------------------------------------------- check (read-only)

    def _check(self) -> Check:
        with mongo_session(self.env) as (admin, port):
            problems = self._problems(admin, port)
        if not problems:
            return Check(Action.KEEP, self.describe(), self.expected())
        if all(p.endswith("missing") for p in problems):
            return Check(Action.CREATE, self.describe())
        return Check(Action.UPDATE, "; ".join(problems))

    def _problems(self, admin: Any, port: int) -> list[str]:
        problems = []
        found = _mongo("rolesInfo", lambda: admin.command("rolesInfo", {"role": READER_ROLE, "db": "admin"},
                                                          showPrivileges=True)["roles"])  # fmt: skip
        want = reader_role(self.env)
        if not found:
            problems.append(f"role {READER_ROLE} missing")
        elif (_normal_privileges(found[0]["privileges"]) != _normal_privileges(want["privileges"])
              or _normal_roles(found[0]["roles"]) != _normal_roles(want["roles"])):  # fmt: skip
            problems.append(f"role {READER_ROLE}: privileges differ")
        roles = user_roles(self.env)
        for account in self.users:
            users = _mongo("usersInfo", lambda a=account: admin.command("usersInfo", {"user": a.user, "db": "admin"})["users"])
            if not users:
                problems.append(f"user {account.user} missing")
                continue
            if _normal_roles(users[0]["roles"]) != _normal_roles(roles[account.role]):
                problems.append(f"user {account.user}: roles differ")
            if not self._logs_in(account, port):
                problems.append(f"user {account.user}: password differs from Secret Manager")
        return problems

    def _logs_in(self, account: MongoAccount, port: int) -> bool:
        """Whether the user logs in with the password Secret Manager holds."""
        from pymongo.errors import OperationFailure, PyMongoError  # deferred: see vertex_edge.gcp.sacred.mongo_client

        password = read_password(self.env.gcp, self.names, account.role)
        client = self.env.mongo(mongo_url(account.user, password, port, db=self.names.mongodb_db))
        try:
            client[self.names.mongodb_db].command("ping")
        except OperationFailure as exc:
            if exc.code == AUTH_FAILED:
                return False
            raise CloudError(f"MongoDB: logging in as {account.user}: {exc}") from None
        except PyMongoError as exc:
            raise CloudError(f"MongoDB: logging in as {account.user}: {exc}") from None
        finally:
            client.close()
        return True

    # ---------------------------------------------------------------- apply

    def _apply(self, check: Check) -> Resource:
        roles = user_roles(self.env)
        with mongo_session(self.env) as (admin, port):
            want = reader_role(self.env)
            exists = _mongo("rolesInfo", lambda: admin.command("rolesInfo", {"role": READER_ROLE, "db": "admin"})["roles"])
            verb = "updateRole" if exists else "createRole"
            _mongo(verb, lambda: admin.command(verb, READER_ROLE, privileges=want["privileges"], roles=want["roles"]))
            for account in self.users:
                password = read_password(self.env.gcp, self.names, account.role)
                exists = _mongo("usersInfo", lambda a=account: admin.command("usersInfo", {"user": a.user, "db": "admin"})["users"])
                verb = "updateUser" if exists else "createUser"
                self.env.notify(f"{verb} {account.user}")
                _mongo(f"{verb} {account.user}",
                       lambda a=account, v=verb, pw=password: admin.command(v, a.user, pwd=pw, roles=roles[a.role]))  # fmt: skip
        self._restart_omniboard()
        return self.expected()

    def _restart_omniboard(self) -> None:
        """Omniboard logged in once at start (and failed, before its user existed): restart it."""
        n = self.names
        kube = self.env.kube()
        self.env.notify(f"restarting {n.omniboard_deployment} with its read-only user")
        deployment = f"deployment/{n.omniboard_deployment}"
        kube.kubectl(["rollout", "restart", deployment, "--namespace", n.namespace])
        kube.kubectl(["rollout", "status", deployment, "--namespace", n.namespace, f"--timeout={ROLLOUT_TIMEOUT}"])
