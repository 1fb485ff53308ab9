"""Team store URIs: ``postgresql://`` / ``postgres://`` with every libpq option passed through.

trackhooks' own options (``artifact_dir``) are taken out of the query before the rest goes to
libpq untouched, so host, port, user, password, dbname, sslmode, ``options=-csearch_path=...``,
``PG*`` environment variables and ``~/.pgpass`` work exactly as they do for psql. What is shown to
people (``display``) and kept in files (the cursor key) never holds the password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote

from trackhooks import InvalidValueError, StoreError
from trackhooks.plugin import redact_uri

SCHEMES = ("postgresql://", "postgres://")
OWN_OPTIONS = ("artifact_dir",)
CONNECT_TIMEOUT_S = 5  # unless the URI or $PGCONNECT_TIMEOUT says otherwise


def handles(uri: str) -> bool:
    return isinstance(uri, str) and uri.strip().lower().startswith(SCHEMES)


@dataclass(frozen=True)
class Target:
    conninfo: str  # what libpq gets (may hold a password: never shown, never stored)
    artifact_dir: str | None
    host: str
    port: str
    dbname: str
    user: str
    options: str  # the libpq "options" setting (e.g. a search_path), part of the store's identity
    password: str | None

    @property
    def where(self) -> str:
        """host:port/db, for messages."""
        return f"{self.host}:{self.port}/{self.dbname}"

    @property
    def display(self) -> str:
        """The store as shown to people and as the identity of its replication cursors."""
        out = f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"
        if self.options:
            from urllib.parse import quote

            out += "?options=" + quote(self.options, safe="=-_.,")
        return out

    def scrub(self, text: str) -> str:
        """A message without the password (libpq never puts it there; this makes sure)."""
        text = redact_uri(text)
        if self.password:
            text = text.replace(self.password, "***")
        return text


def parse(uri: str) -> Target:
    """Split a team store URI into libpq's conninfo and trackhooks' options."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    text = uri.strip()
    if not handles(text):
        raise InvalidValueError(f"not a PostgreSQL store URI: {redact_uri(text)!r}")
    base, sep, query = text.partition("?")
    kept, own = [], {}
    for item in query.split("&") if sep else []:
        if not item:
            continue
        k, _, v = item.partition("=")
        if unquote(k) in OWN_OPTIONS:
            own[unquote(k)] = unquote(v)
        else:
            kept.append(item)
    conninfo = base + ("?" + "&".join(kept) if kept else "")
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"invalid PostgreSQL store URI {redact_uri(text)!r}: {redact_uri(str(exc))}") from None
    env = os.environ
    user = params.get("user") or env.get("PGUSER") or _os_user()
    host = params.get("host") or env.get("PGHOST") or "localhost"
    port = str(params.get("port") or env.get("PGPORT") or 5432)
    dbname = params.get("dbname") or env.get("PGDATABASE") or user
    artifact_dir = own.get("artifact_dir") or env.get("TRACKHOOKS_ARTIFACT_DIR") or None
    if artifact_dir:
        artifact_dir = os.path.abspath(os.path.expanduser(artifact_dir))
    return Target(conninfo, artifact_dir, str(host), port, str(dbname), str(user), str(params.get("options") or ""),
                  params.get("password") or None)


def _os_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name: libpq would fail the same way
        return "postgres"


def connect(target: Target, *, autocommit: bool, statement_timeout_ms: int | None = None):
    """A psycopg connection; connection failures become ConnectionError (an OSError) naming
    host:port/db and the server's reason, never the password."""
    import psycopg

    extra = {}
    if "connect_timeout" not in target.conninfo and not os.environ.get("PGCONNECT_TIMEOUT"):
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    if "keepalives" not in target.conninfo:
        # a server that vanished without closing the connection is noticed within a minute
        extra.update(keepalives=1, keepalives_idle=20, keepalives_interval=5, keepalives_count=4)
    if "application_name" not in target.conninfo and not os.environ.get("PGAPPNAME"):
        extra["application_name"] = "trackhooks"
    try:
        conn = psycopg.connect(target.conninfo, autocommit=autocommit, **extra)
    except psycopg.OperationalError as exc:
        raise ConnectionError(f"cannot connect to the team store {target.where}: {reason(target, exc)}") from None
    except psycopg.Error as exc:
        raise ConnectionError(f"cannot connect to the team store {target.where}: {reason(target, exc)}") from None
    if statement_timeout_ms:
        try:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(int(statement_timeout_ms)),))
            if not autocommit:
                conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise ConnectionError(f"team store {target.where}: {reason(target, exc)}") from None
    return conn


def reason(target: Target, exc: BaseException) -> str:
    """The server's or libpq's reason in one line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # libpq: 'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    text = lines[0] if lines else type(exc).__name__
    for ln in lines:
        if ln.startswith("FATAL:") or "does not exist" in ln or "authentication failed" in ln:
            text = ln
            break
    if text.startswith("FATAL:"):
        text = text[len("FATAL:"):].strip()
    return target.scrub(text)
