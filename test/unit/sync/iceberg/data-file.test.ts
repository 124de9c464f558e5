import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readParquetFooter } from '../../../../agent/hot/parquet-footer.ts';
import type { FileStats } from '../../../../agent/hot/parquet-writer.ts';
import { dataFileFor, MAX_STRING_BOUND_BYTES, splitOffsetsOfFile } from '../../../../sync/iceberg/data-file.ts';
import { compareSingleValues, encodeSingleValue } from '../../../../sync/iceberg/single-value.ts';
import { PLANT_FIELD_ID } from '../../../../sync/iceberg/table-schema.ts';
import { lineDataset, lineFile, T0, T0_DAY } from '../../../support/iceberg-files.ts';

const hex = (b: Buffer | undefined): string | undefined => b?.toString('hex');

describe('single-value serialization (Appendix D)', () => {
  it('encodes each type byte for byte', () => {
    expect(hex(encodeSingleValue('boolean', true))).toBe('01');
    expect(hex(encodeSingleValue('boolean', false))).toBe('00');
    expect(hex(encodeSingleValue('int', -2))).toBe('feffffff');
    expect(hex(encodeSingleValue('date', 20778))).toBe('2a510000');
    expect(hex(encodeSingleValue('long', 2 ** 40))).toBe('0000000000010000');
    expect(hex(encodeSingleValue('long', -(2n ** 63n)))).toBe('0000000000000080');
    // 2026-11-21T14:40:00.000001Z in µs, little-endian.
    expect(hex(encodeSingleValue('timestamptz', T0 + 1))).toBe('01d0d555ca600600');
    expect(hex(encodeSingleValue('double', 1.5))).toBe('000000000000f83f');
    expect(hex(encodeSingleValue('double', -0))).toBe('0000000000000080');
    expect(hex(encodeSingleValue('string', 'é'))).toBe('c3a9');
  });

  it('has no form for NaN or an inexact long', () => {
    expect(() => encodeSingleValue('double', Number.NaN)).toThrow(/not a double bound/);
    expect(() => encodeSingleValue('long', 2 ** 60)).toThrow(/not an exact long/);
  });

  it('orders strings by UTF-8 bytes and -0 before +0', () => {
    expect(compareSingleValues('\u{1F600}', '\uFFFD')).toBe(1); // UTF-16 units would say -1
    expect(compareSingleValues(-0, 0)).toBe(-1);
    expect(compareSingleValues(2n, 10n)).toBe(-1);
    expect(compareSingleValues(false, true)).toBe(-1);
  });
});

describe('dataFileFor', () => {
  const { parquet, dataFile } = lineFile('s3://warm/readings/a.parquet', 'l1', 'plant_a');
  const bound = (map: 'lower_bounds' | 'upper_bounds', id: number): string | undefined => hex(dataFile[map]!.find((e) => e.key === id)?.value);

  it('describes the file: path, format, counts, partition, split offsets', () => {
    expect(dataFile).toMatchObject({
      content: 0,
      file_path: 's3://warm/readings/a.parquet',
      file_format: 'PARQUET',
      partition: { ts_day: T0_DAY, plant: 'plant_a', line: 'l1' },
      record_count: 4n,
      file_size_in_bytes: BigInt(parquet.bytes.length),
      equality_ids: null,
      sort_order_id: 0,
    });
    const footer = readParquetFooter(parquet.bytes);
    expect(footer.rowGroups).toHaveLength(2);
    expect(dataFile.split_offsets).toEqual(footer.rowGroups.map((g) => BigInt(g.startOffset)));
    expect(dataFile.split_offsets![0]).toBe(4n); // right after the "PAR1" magic
    expect(dataFile.split_offsets![1]! > 4n).toBe(true);
  });

  it('reads the split offsets of a file on disk from its footer alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lakeside-split-'));
    try {
      writeFileSync(join(dir, 'a.parquet'), parquet.bytes);
      expect(splitOffsetsOfFile(join(dir, 'a.parquet'))).toEqual(dataFile.split_offsets);
      writeFileSync(join(dir, 'short'), 'PAR1');
      expect(() => splitOffsetsOfFile(join(dir, 'short'))).toThrow(/too short/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes the bounds in single-value binary form, NaN skipped', () => {
    expect(bound('lower_bounds', 1)).toBe('01d0d555ca600600'); // T0 + 1 µs
    expect(bound('upper_bounds', 1)).toBe('09d0d555ca600600'); // T0 + 9 µs
    expect(bound('lower_bounds', 3)).toBe('00000000000002c0'); // -2.25, the NaN row not a bound
    expect(bound('upper_bounds', 3)).toBe('000000000000f83f'); // 1.5
    expect(bound('lower_bounds', 4)).toBe('fdffffffffffffff'); // -3
    expect(bound('upper_bounds', 4)).toBe('0000000000010000'); // 2^40
    expect([bound('lower_bounds', 5), bound('upper_bounds', 5)]).toEqual(['00', '01']);
    expect([bound('lower_bounds', 6), bound('upper_bounds', 6)]).toEqual(['feffffff', '64000000']);
    expect(Buffer.from(bound('lower_bounds', 7)!, 'hex').toString()).toBe('1'.padStart(64, '0'));
    expect(dataFile.lower_bounds!.map((e) => e.key)).toEqual([1, 2, 3, 4, 5, 6, 7, PLANT_FIELD_ID]);
  });

  it('adds the plant column: every row a value, no null, the plant as both bounds', () => {
    expect(dataFile.value_counts!.at(-1)).toEqual({ key: PLANT_FIELD_ID, value: 4n });
    expect(dataFile.null_value_counts!.at(-1)).toEqual({ key: PLANT_FIELD_ID, value: 0n });
    expect(bound('lower_bounds', PLANT_FIELD_ID)).toBe(Buffer.from('plant_a').toString('hex'));
    expect(bound('upper_bounds', PLANT_FIELD_ID)).toBe(Buffer.from('plant_a').toString('hex'));
    expect(dataFile.column_sizes!.some((e) => e.key === PLANT_FIELD_ID)).toBe(false);
    expect(dataFile.nan_value_counts).toEqual([{ key: 3, value: 1n }]);
  });

  it('keys the plant stats by the table\'s own plant id when a catalog assigned it (Java REST catalogs renumber at create)', () => {
    const renumbered = dataFileFor({ dataset: lineDataset, plant: 'plant_a', path: 'file:///x', fileSizeBytes: 1, stats: parquet.stats, partitionValues: { line: 'l1' }, splitOffsets: null, plantFieldId: 8 });
    expect(renumbered.value_counts!.at(-1)).toEqual({ key: 8, value: 4n });
    expect(renumbered.null_value_counts!.at(-1)).toEqual({ key: 8, value: 0n });
    expect(renumbered.lower_bounds!.map((e) => e.key)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(renumbered.upper_bounds!.find((e) => e.key === 8)!.value.toString()).toBe('plant_a');
    expect([...renumbered.value_counts!, ...renumbered.lower_bounds!].some((e) => e.key === PLANT_FIELD_ID)).toBe(false);
  });

  const stats = (patch: Partial<FileStats>): FileStats => ({ ...parquet.stats, ...patch });
  const build = (s: FileStats) =>
    dataFileFor({ dataset: lineDataset, plant: 'p', path: 'file:///x', fileSizeBytes: 1, stats: s, partitionValues: { line: 'l1' }, splitOffsets: null });

  it('leaves out a string bound longer than 256 bytes rather than truncate it', () => {
    const long = 'x'.repeat(MAX_STRING_BOUND_BYTES + 1);
    const exact = 'é'.repeat(MAX_STRING_BOUND_BYTES / 2); // 256 bytes, 128 characters
    const file = build(stats({ lower_bounds: { ...parquet.stats.lower_bounds, '2': exact }, upper_bounds: { ...parquet.stats.upper_bounds, '2': long } }));
    expect(file.lower_bounds!.find((e) => e.key === 2)?.value.toString()).toBe(exact);
    expect(file.upper_bounds!.find((e) => e.key === 2)).toBeUndefined();
  });

  it('never writes NaN as a bound', () => {
    const file = build(stats({ lower_bounds: { ...parquet.stats.lower_bounds, '3': Number.NaN } }));
    expect(file.lower_bounds!.find((e) => e.key === 3)).toBeUndefined();
  });

  it('refuses a file whose rows span two UTC days (its day partition would lie)', () => {
    const day = 86_400_000_000;
    expect(() => build(stats({ upper_bounds: { ...parquet.stats.upper_bounds, '1': (T0_DAY + 1) * day } }))).toThrow(/more than one UTC day/);
    expect(build(stats({ upper_bounds: { ...parquet.stats.upper_bounds, '1': (T0_DAY + 1) * day - 1 } })).partition.ts_day).toBe(T0_DAY);
  });

  it('stores a long partition value as an exact bigint and a missing one as null', () => {
    const withLong = { ...lineDataset, partitionBy: [3] }; // `count`, a long
    const file = dataFileFor({ dataset: withLong, plant: 'p', path: 'file:///x', fileSizeBytes: 1, stats: parquet.stats, partitionValues: { count: 12 }, splitOffsets: null });
    expect(file.partition.count).toBe(12n);
    const none = dataFileFor({ dataset: withLong, plant: 'p', path: 'file:///x', fileSizeBytes: 1, stats: parquet.stats, partitionValues: {}, splitOffsets: null });
    expect(none.partition.count).toBeNull();
  });
});
