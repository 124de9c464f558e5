// An empty Iceberg v2 manifest list for catalog tests (lakeside's own writer with no
// entries): a snapshot that points at it is a real, readable snapshot of no files, so
// catalog tests can commit appends without manifests, and PyIceberg scans them (0 rows).
import { writeManifestList } from '../../sync/iceberg/manifest-list.ts';

export function emptyManifestList(snapshot: { snapshotId: bigint; parentSnapshotId: bigint | null; sequenceNumber: number }): Uint8Array {
  return writeManifestList({ snapshotId: snapshot.snapshotId, parentSnapshotId: snapshot.parentSnapshotId, sequenceNumber: BigInt(snapshot.sequenceNumber) }, []);
}
