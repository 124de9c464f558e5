/**
 * Where hot-tier files live, relative to the state directory (the form stored in
 * `hot_files.path`):
 *   hot/<dataset>/L0/<window>/<firstId>-<lastId>.parquet
 *   hot/<dataset>/L1/<window>/<key=value/…>/<firstL0>-<lastL0>-p<n>-<k>.parquet
 *   hot/<dataset>/R1/<window>/<firstL0>-<lastL0>.parquet   (per-minute rollups, rollup.ts)
 *   hot/<dataset>/L1/<hour>/<key=value/…>/h<firstId>-<lastId>-<k>.parquet   (merge.ts)
 *   hot/<dataset>/R1/<hour|day>/h|d<firstId>-<lastId>.parquet             (merge.ts)
 * `<window>` is the window start in ISO basic form, e.g. 20261121T1440Z (`<hour>`,
 * `<day>`: the merged span's start in the same form). Merged files are named by the
 * first and last hot_files ids of their inputs, with the span's letter in front. Names are
 * derived from ids that are never reused (landing ids, hot_files ids), so a retried
 * step produces the same name and no two steps produce the same one.
 * Everything under `hot/` belongs to the hot tier: recovery deletes what is not registered.
 */
import type { RowValue } from '../../config/dataset.ts';

export const HOT_DIR = 'hot';

/** Window start µs → `YYYYMMDDTHHMMZ` (windows are whole minutes). */
export function windowDirName(windowStartUs: number): string {
  const iso = new Date(Math.floor(windowStartUs / 1000)).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}Z`;
}

export function windowStartOf(timeUs: number, windowUs: number): number {
  return Math.floor(timeUs / windowUs) * windowUs;
}

export function l0Path(dataset: string, windowStartUs: number, firstId: number, lastId: number): string {
  return `${HOT_DIR}/${dataset}/L0/${windowDirName(windowStartUs)}/${firstId}-${lastId}.parquet`;
}

/** Hive's name for a null partition value. */
const NULL_SEGMENT = '__HIVE_DEFAULT_PARTITION__';

export function partitionSegments(values: Record<string, RowValue>): string {
  return Object.entries(values)
    .map(([name, value]) => `${name}=${value === null ? NULL_SEGMENT : encodeURIComponent(String(value))}`)
    .join('/');
}

export function l1Path(
  dataset: string,
  windowStartUs: number,
  partition: Record<string, RowValue>,
  firstL0: number,
  lastL0: number,
  partitionOrdinal: number,
  part: number,
): string {
  const segments = partitionSegments(partition);
  const dir = `${HOT_DIR}/${dataset}/L1/${windowDirName(windowStartUs)}${segments ? `/${segments}` : ''}`;
  return `${dir}/${firstL0}-${lastL0}-p${partitionOrdinal}-${part}.parquet`;
}

/** The rollup file of one compaction step (same inputs → same name, like its L1 files). */
export function r1Path(dataset: string, windowStartUs: number, firstL0: number, lastL0: number): string {
  return `${HOT_DIR}/${dataset}/R1/${windowDirName(windowStartUs)}/${firstL0}-${lastL0}.parquet`;
}

/** The letter that names a merged file's span: `h` an hour, `d` a day (merge.ts). */
export type MergeSpanLetter = 'h' | 'd';

/** A merged L1 file (merge.ts): the partition's rows of one hour, `part` k of them. */
export function mergedL1Path(dataset: string, hourStartUs: number, partition: Record<string, RowValue>, firstId: number, lastId: number, part: number): string {
  const segments = partitionSegments(partition);
  const dir = `${HOT_DIR}/${dataset}/L1/${windowDirName(hourStartUs)}${segments ? `/${segments}` : ''}`;
  return `${dir}/h${firstId}-${lastId}-${part}.parquet`;
}

/** A merged rollup file (merge.ts): every rollup row of one hour (`h`) or day (`d`). */
export function mergedRollupPath(dataset: string, spanStartUs: number, letter: MergeSpanLetter, firstId: number, lastId: number): string {
  return `${HOT_DIR}/${dataset}/R1/${windowDirName(spanStartUs)}/${letter}${firstId}-${lastId}.parquet`;
}

/** Whether `path` is a merged file of the span named `letter`. */
export function isMergedPath(path: string, letter: MergeSpanLetter): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name.length > 1 && name[0] === letter && name[1]! >= '0' && name[1]! <= '9';
}
