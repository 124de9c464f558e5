// Java Iceberg as an independent reader and writer of a table in a local folder
// (test/services/IcebergJavaLocal.java, run as a single source file on the Iceberg REST
// fixture's class path, which bundles iceberg-core, Hadoop and Avro). Needs a JDK (java
// 11+); a missing one throws, never skips.
import { fileURLToPath } from 'node:url';
import { provisionIcebergRest } from './iceberg-rest.ts';
import { runCommand } from './service-cache.ts';

const PROGRAM = fileURLToPath(new URL('./IcebergJavaLocal.java', import.meta.url));

export interface JavaLocalResult {
  /** The live files Java planned from the table's current snapshot (lakeside's manifests). */
  files: {
    path: string;
    record_count: number;
    partition: (string | null)[];
    data_sequence_number: number;
    file_sequence_number: number;
    plant_lower: string | null;
    plant_upper: string | null;
    split_offsets: string | null;
  }[];
  /** The snapshot of Java's own append (decimal: past 2^53). */
  snapshot_id: string;
  sequence_number: number;
  manifest_list: string;
}

/**
 * Java loads the table at `location` (metadata/version-hint.text must name the current
 * vN.metadata.json), plans a scan, then fast-appends `dataFile` (partition
 * ts_day=2026-11-21/plant=plant_java/line=l9), writing its own manifest and manifest list.
 */
export async function icebergJavaLocal(location: string, dataFile: string, sizeBytes: number): Promise<JavaLocalResult> {
  const classpath = await provisionIcebergRest();
  const { output } = await runCommand('java', ['-cp', classpath, PROGRAM, location, dataFile, String(sizeBytes)], {
    what: 'Java Iceberg (IcebergJavaLocal.java)',
    timeoutMs: 180_000,
  });
  const line = output.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`Java Iceberg printed no result:\n${output.slice(-2000)}`);
  return JSON.parse(line.slice('RESULT '.length)) as JavaLocalResult;
}
