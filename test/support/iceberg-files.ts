/** A dataset, a real Parquet file of it and its Iceberg data_file: shared by the manifest tests. */
import { resolveDataset, type Dataset, type RowValue } from '../../config/dataset.ts';
import { datasetSchema } from '../../config/schema.ts';
import { columnsFromRows } from '../../agent/hot/columns.ts';
import { encodeParquet, type EncodedParquet } from '../../agent/hot/parquet-writer.ts';
import { dataFileFor, splitOffsetsOf, type DataFile } from '../../sync/iceberg/data-file.ts';

export const lineDataset: Dataset = resolveDataset(
  datasetSchema.parse({
    name: 'readings',
    time_column: 'ts',
    columns: [
      { name: 'line', type: 'string', nullable: false },
      { name: 'value', type: 'double' },
      { name: 'count', type: 'long' },
      { name: 'ok', type: 'boolean' },
      { name: 'code', type: 'int' },
      { name: 'image', type: 'blob' },
    ],
    partition_by: ['line'],
  }),
);

/** 2026-11-21T14:40Z in µs: day 20778 since the epoch. */
export const T0 = Date.UTC(2026, 10, 21, 14, 40) * 1000;
export const T0_DAY = 20778;

const sha = (n: number): string => n.toString(16).padStart(64, '0');

export function lineRows(line: string, offset = 0): RowValue[][] {
  return [
    [T0 + offset + 5, line, 1.5, 2 ** 40, true, 7, sha(1)],
    [T0 + offset + 1, line, Number.NaN, -3, false, -2, sha(2)],
    [T0 + offset + 9, line, null, null, null, null, null],
    [T0 + offset + 2, line, -2.25, 12, true, 100, sha(3)],
  ];
}

export interface LineFile {
  parquet: EncodedParquet;
  dataFile: DataFile;
}

export function lineFile(path: string, line: string, plant = 'plant_a', offset = 0): LineFile {
  const parquet = encodeParquet(lineDataset, columnsFromRows(lineDataset, lineRows(line, offset), 0), { rowGroupRows: 2 });
  const dataFile = dataFileFor({
    dataset: lineDataset,
    plant,
    path,
    fileSizeBytes: parquet.bytes.length,
    stats: parquet.stats,
    partitionValues: { line },
    splitOffsets: splitOffsetsOf(parquet.bytes),
  });
  return { parquet, dataFile };
}
