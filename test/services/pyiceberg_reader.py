"""PyIceberg as an independent reader (and writer) of Iceberg tables, for lakeside's tests.

Reads one JSON request on stdin:
    {"properties": {"uri": ..., "s3.endpoint": ..., ...}, "op": "<name>", "args": {...}}
and writes one JSON document on stdout. Failures exit non-zero with the traceback on
stderr. Table names are "ns.table" or "ns1.ns2.table" (the last part is the table).

Ops (args in brackets):
    namespaces            -> [["ns"], ["ns1", "ns2"], ...]
    tables [namespace]    -> [["ns", "t"], ...]
    metadata [table]      -> format version, location, metadata file, schema, spec, properties
    snapshots [table]     -> [{snapshot_id, parent_snapshot_id, sequence_number, timestamp_ms,
                               operation, summary, manifest_list}], oldest first
    files [table, snapshot_id?] -> [{file_path, file_format, record_count, file_size_in_bytes,
                               partition}] of the current (or given) snapshot
    scan [table, snapshot_id?, row_filter?, selected_fields?, with_rows? (default true),
          order_by?] -> {row_count, columns, rows?}
    create_and_append [table, rows, schema?] -> creates the namespace and table if missing
                               (schema from `schema` [{name, type, required?}] or from the rows),
                               appends the rows with PyIceberg's own writer; returns snapshots
    script [code]         -> runs `code` with `catalog` and `args` in scope; returns its `result`

JSON encoding of values: snapshot ids, and any integer beyond 2**53 - 1, as decimal strings
(JavaScript numbers would round them; pass snapshot ids back as those strings), datetimes and dates in ISO 8601, bytes as {"base64": ...},
Decimal as a string, NaN/Infinity as strings.
"""

import base64
import datetime
import decimal
import json
import math
import sys
import uuid

from pyiceberg.catalog import load_catalog


MAX_SAFE_INTEGER = 2**53 - 1


def to_json(value):
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


def snapshot_json(s):
    summary = s.summary
    return {
        "snapshot_id": str(s.snapshot_id),
        "parent_snapshot_id": None if s.parent_snapshot_id is None else str(s.parent_snapshot_id),
        "sequence_number": s.sequence_number,
        "timestamp_ms": s.timestamp_ms,
        "operation": summary.operation.value if summary is not None else None,
        "summary": dict(summary.additional_properties) if summary is not None else {},
        "manifest_list": s.manifest_list,
        "schema_id": s.schema_id,
    }


def snapshot_id(args):
    value = args.get("snapshot_id")
    return None if value is None else int(value)


def op_namespaces(catalog, args):
    return [list(ns) for ns in catalog.list_namespaces(tuple(args.get("parent", ())))]


def op_tables(catalog, args):
    return [list(t) for t in catalog.list_tables(args["namespace"])]


def op_metadata(catalog, args):
    table = catalog.load_table(args["table"])
    md = table.metadata
    return {
        "format_version": md.format_version,
        "table_uuid": str(md.table_uuid),
        "location": md.location,
        "metadata_location": table.metadata_location,
        "current_snapshot_id": None if md.current_snapshot_id is None else str(md.current_snapshot_id),
        "last_sequence_number": md.last_sequence_number,
        "schema": json.loads(table.schema().model_dump_json()),
        "partition_spec": json.loads(table.spec().model_dump_json()),
        "properties": dict(md.properties),
        "refs": {name: json.loads(ref.model_dump_json()) for name, ref in md.refs.items()},
    }


def op_snapshots(catalog, args):
    table = catalog.load_table(args["table"])
    return [snapshot_json(s) for s in table.metadata.snapshots]


def op_files(catalog, args):
    table = catalog.load_table(args["table"])
    scan = table.scan(snapshot_id=snapshot_id(args))
    out = []
    for task in scan.plan_files():
        f = task.file
        out.append(
            {
                "file_path": f.file_path,
                "file_format": str(f.file_format.value) if hasattr(f.file_format, "value") else str(f.file_format),
                "record_count": f.record_count,
                "file_size_in_bytes": f.file_size_in_bytes,
                "partition": partition_json(table, f),
            }
        )
    return sorted(out, key=lambda x: x["file_path"])


def partition_json(table, data_file):
    spec = table.specs().get(data_file.spec_id, table.spec())
    return {field.name: data_file.partition[i] for i, field in enumerate(spec.fields)}


def op_scan(catalog, args):
    table = catalog.load_table(args["table"])
    kwargs = {}
    if args.get("snapshot_id") is not None:
        kwargs["snapshot_id"] = snapshot_id(args)
    if args.get("row_filter"):
        kwargs["row_filter"] = args["row_filter"]
    if args.get("selected_fields"):
        kwargs["selected_fields"] = tuple(args["selected_fields"])
    arrow = table.scan(**kwargs).to_arrow()
    out = {"row_count": arrow.num_rows, "columns": arrow.schema.names}
    if args.get("with_rows", True):
        if args.get("order_by"):
            arrow = arrow.sort_by([(c, "ascending") for c in args["order_by"]])
        out["rows"] = arrow.to_pylist()
    return out


PRIMITIVES = {
    "boolean": "BooleanType",
    "int": "IntegerType",
    "long": "LongType",
    "float": "FloatType",
    "double": "DoubleType",
    "date": "DateType",
    "timestamp": "TimestampType",
    "timestamptz": "TimestamptzType",
    "string": "StringType",
    "binary": "BinaryType",
}


def iceberg_schema(fields):
    from pyiceberg import types
    from pyiceberg.schema import Schema

    nested = []
    for i, f in enumerate(fields, start=1):
        kind = getattr(types, PRIMITIVES[f["type"]])()
        nested.append(types.NestedField(field_id=i, name=f["name"], field_type=kind, required=bool(f.get("required"))))
    return Schema(*nested)


def op_create_and_append(catalog, args):
    import pyarrow as pa

    name = args["table"]
    namespace = tuple(name.split(".")[:-1])
    catalog.create_namespace_if_not_exists(namespace)
    schema = iceberg_schema(args["schema"]) if args.get("schema") else None
    if schema is not None:
        arrow_schema = schema.as_arrow()
        data = pa.Table.from_pylist(args["rows"], schema=arrow_schema)
    else:
        data = pa.Table.from_pylist(args["rows"])
    table = catalog.create_table_if_not_exists(name, schema=schema if schema is not None else data.schema)
    table.append(data)
    table = catalog.load_table(name)
    return {
        "metadata_location": table.metadata_location,
        "snapshots": [snapshot_json(s) for s in table.metadata.snapshots],
    }


def op_script(catalog, args):
    scope = {"catalog": catalog, "args": args.get("args", {}), "result": None}
    exec(args["code"], scope)
    return scope["result"]


OPS = {
    "namespaces": op_namespaces,
    "tables": op_tables,
    "metadata": op_metadata,
    "snapshots": op_snapshots,
    "files": op_files,
    "scan": op_scan,
    "create_and_append": op_create_and_append,
    "script": op_script,
}


def main():
    request = json.load(sys.stdin)
    op = OPS.get(request["op"])
    if op is None:
        raise SystemExit(f"unknown op {request['op']!r}; known: {', '.join(sorted(OPS))}")
    catalog = load_catalog("lakeside-test", **{"type": "rest", **request["properties"]})
    result = op(catalog, request.get("args", {}))
    json.dump(to_json(result), sys.stdout)


if __name__ == "__main__":
    main()
