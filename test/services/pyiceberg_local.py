"""PyIceberg reading a table straight from its files (no catalog), for lakeside's manifest tests.

Reads one JSON request on stdin:
    {"metadata": "<path to vN.metadata.json>", "scan": bool, "filter": "<row filter>"?,
     "rewrite": {"manifest": path, "list": path, "snapshot_id": "<decimal>", "codec": "deflate"}?}
and writes one JSON document: the snapshot, the manifest list as PyIceberg's own
read_manifest_list decodes it, each manifest's entries (ManifestFile.fetch_manifest_entry
with sequence numbers and snapshot ids inherited), the bounds decoded with
pyiceberg.conversions.from_bytes by the table schema's types, and (scan) the rows of a
full table scan; with `rewrite`, PyIceberg's own writers (write_manifest,
write_manifest_list) copy every live entry of the current snapshot as EXISTING into a new
manifest and list, so lakeside can test its readers on another engine's files. JSON encoding as in pyiceberg_reader.py (ids beyond 2**53 as strings).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pyiceberg.conversions import from_bytes  # noqa: E402
from pyiceberg.io.pyarrow import PyArrowFileIO  # noqa: E402
from pyiceberg.manifest import read_manifest_list, write_manifest, write_manifest_list  # noqa: E402
from pyiceberg.table import StaticTable  # noqa: E402

from pyiceberg_reader import to_json  # noqa: E402


def as_dict(pairs):
    return None if pairs is None else dict(pairs)


def bounds(schema, pairs):
    if pairs is None:
        return None
    return {str(k): from_bytes(schema.find_field(k).field_type, v) for k, v in pairs.items()}


def entry_json(schema, entry):
    f = entry.data_file
    return {
        "status": int(entry.status),
        "snapshot_id": entry.snapshot_id,
        "sequence_number": entry.sequence_number,
        "file_sequence_number": entry.file_sequence_number,
        "file_path": f.file_path,
        "file_format": str(f.file_format.name),
        "content": int(f.content),
        "partition": [f.partition[i] for i in range(len(f.partition))],
        "record_count": f.record_count,
        "file_size_in_bytes": f.file_size_in_bytes,
        "column_sizes": as_dict(f.column_sizes),
        "value_counts": as_dict(f.value_counts),
        "null_value_counts": as_dict(f.null_value_counts),
        "nan_value_counts": as_dict(f.nan_value_counts),
        "lower_bounds": bounds(schema, f.lower_bounds),
        "upper_bounds": bounds(schema, f.upper_bounds),
        "split_offsets": f.split_offsets,
        "sort_order_id": f.sort_order_id,
    }


def main():
    request = json.load(sys.stdin)
    table = StaticTable.from_metadata(request["metadata"])
    io = PyArrowFileIO()
    schema = table.schema()
    snapshot = table.current_snapshot()
    manifests = []
    for m in read_manifest_list(io.new_input(snapshot.manifest_list)):
        manifests.append(
            {
                "manifest_path": m.manifest_path,
                "manifest_length": m.manifest_length,
                "partition_spec_id": m.partition_spec_id,
                "content": int(m.content),
                "sequence_number": m.sequence_number,
                "min_sequence_number": m.min_sequence_number,
                "added_snapshot_id": m.added_snapshot_id,
                "added_files_count": m.added_files_count,
                "existing_files_count": m.existing_files_count,
                "deleted_files_count": m.deleted_files_count,
                "added_rows_count": m.added_rows_count,
                "existing_rows_count": m.existing_rows_count,
                "deleted_rows_count": m.deleted_rows_count,
                "partitions": [
                    {
                        "contains_null": s.contains_null,
                        "contains_nan": s.contains_nan,
                        "lower_bound": s.lower_bound,
                        "upper_bound": s.upper_bound,
                    }
                    for s in (m.partitions or [])
                ],
                "entries": [entry_json(schema, e) for e in m.fetch_manifest_entry(io, discard_deleted=False)],
            }
        )
    result = {"snapshot_id": snapshot.snapshot_id, "sequence_number": snapshot.sequence_number, "manifests": manifests}
    if request.get("scan"):
        arrow = table.scan().to_arrow()
        result["columns"] = arrow.column_names
        result["rows"] = arrow.to_pylist()
        pruned = table.scan(row_filter=request["filter"]).plan_files() if request.get("filter") else None
        if pruned is not None:
            result["filtered_files"] = sorted(t.file.file_path for t in pruned)
    if request.get("rewrite"):
        rewrite(io, table, snapshot, request["rewrite"])
    json.dump(to_json(result), sys.stdout)


def rewrite(io, table, snapshot, args):
    snapshot_id = int(args["snapshot_id"])
    codec = args.get("codec", "deflate")
    writer = write_manifest(2, table.spec(), table.schema(), io.new_output(args["manifest"]), snapshot_id, codec)
    with writer:
        for m in read_manifest_list(io.new_input(snapshot.manifest_list)):
            for entry in m.fetch_manifest_entry(io):
                writer.existing(entry)
    manifest = writer.to_manifest_file()
    with write_manifest_list(2, io.new_output(args["list"]), snapshot_id, snapshot.snapshot_id, snapshot.sequence_number + 1, codec) as lists:
        lists.add_manifests([manifest])


if __name__ == "__main__":
    main()
