"""FreePBX's ``cdr`` and ``cel`` tables in ``asteriskcdrdb``, as FreePBX installs them.

``cel``: the table FreePBX's cdr module creates in its install.php (``CREATE TABLE IF NOT
EXISTS cel``), the one Asterisk's ``cel_odbc`` fills. ``cdr``: the columns of Asterisk's
contrib MySQL CDR schema that FreePBX distributions create, plus the columns FreePBX's cdr
module adds (``did``, ``recordingfile``, ``cnum``, ``cnam``, ``outbound_cnum``,
``outbound_cnam``, ``dst_cnam``). Both keep times as ``datetime`` in the PBX's local time,
to the second; ``eventextra`` is 255 characters, so a long transfer's JSON arrives cut
(``cel_odbc`` truncates what does not fit, see ``CEL_WIDTHS``).

pbxbridge only reads these tables; the DDL is here for tests, the benchmark and the docs.
"""

from __future__ import annotations

# Column widths of FreePBX's cel table: what cel_odbc keeps of each value.
CEL_WIDTHS: dict[str, int] = {
    "eventtype": 30,
    "cid_name": 80,
    "cid_num": 80,
    "cid_ani": 80,
    "cid_rdnis": 80,
    "cid_dnid": 80,
    "exten": 80,
    "context": 80,
    "channame": 80,
    "src": 80,
    "dst": 80,
    "channel": 80,
    "dstchannel": 80,
    "appname": 80,
    "appdata": 80,
    "accountcode": 20,
    "uniqueid": 32,
    "linkedid": 32,
    "peer": 80,
    "userdeftype": 255,
    "eventextra": 255,
    "userfield": 255,
}
CEL_COLUMNS = ("eventtype", "eventtime", *[c for c in CEL_WIDTHS if c != "eventtype"], "amaflags")

CDR_WIDTHS: dict[str, int] = {
    "clid": 80,
    "src": 80,
    "dst": 80,
    "dcontext": 80,
    "channel": 80,
    "dstchannel": 80,
    "lastapp": 80,
    "lastdata": 80,
    "disposition": 45,
    "accountcode": 20,
    "uniqueid": 32,
    "userfield": 255,
    "did": 50,
    "recordingfile": 255,
    "cnum": 40,
    "cnam": 40,
    "outbound_cnum": 40,
    "outbound_cnam": 40,
    "dst_cnam": 40,
    "linkedid": 32,
    "peeraccount": 20,
}
CDR_COLUMNS = ("calldate", *CDR_WIDTHS, "duration", "billsec", "amaflags", "sequence")


def _varchars(widths: dict[str, int], skip: tuple[str, ...] = ()) -> list[str]:
    return [f"{name} varchar({width}) NOT NULL DEFAULT ''" for name, width in widths.items() if name not in skip]


def cel_ddl(dialect: str) -> str:
    """``CREATE TABLE cel`` for ``mysql`` (FreePBX's own) or ``postgresql`` (the same columns)."""
    key = "id int(11) NOT NULL AUTO_INCREMENT" if dialect == "mysql" else "id serial NOT NULL"
    eventtime = "eventtime datetime NOT NULL" if dialect == "mysql" else "eventtime timestamp(0) NOT NULL"
    columns = [
        key,
        f"eventtype varchar({CEL_WIDTHS['eventtype']}) NOT NULL",
        eventtime,
        *_varchars(CEL_WIDTHS, skip=("eventtype",)),
        "amaflags int NOT NULL DEFAULT 0",
        "PRIMARY KEY (id)",
    ]
    return "CREATE TABLE cel (\n  " + ",\n  ".join(columns) + "\n)"


def cdr_ddl(dialect: str) -> str:
    """``CREATE TABLE cdr`` as a FreePBX system has it."""
    calldate = "calldate datetime NOT NULL" if dialect == "mysql" else "calldate timestamp(0) NOT NULL"
    columns = [
        calldate,
        *_varchars(CDR_WIDTHS),
        "duration int NOT NULL DEFAULT 0",
        "billsec int NOT NULL DEFAULT 0",
        "amaflags int NOT NULL DEFAULT 0",
        "sequence int NOT NULL DEFAULT 0",
    ]
    return "CREATE TABLE cdr (\n  " + ",\n  ".join(columns) + "\n)"


def index_ddl() -> list[str]:
    """The indexes FreePBX creates: cel by uniqueid and linkedid, cdr by uniqueid (and calldate, as distributions add)."""
    return [
        "CREATE INDEX uniqueid_index ON cel (uniqueid)",
        "CREATE INDEX linkedid_index ON cel (linkedid)",
        "CREATE INDEX cdr_uniqueid ON cdr (uniqueid)",
        "CREATE INDEX cdr_calldate ON cdr (calldate)",
        "CREATE INDEX cdr_linkedid ON cdr (linkedid)",
    ]
