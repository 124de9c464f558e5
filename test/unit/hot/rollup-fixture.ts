/** Datasets and rows for the rollup tests: a numeric dataset with a two-column stream key (one nullable), and one without numeric columns. */
import type { RowValue } from '../../../config/dataset.ts';
import { datasetSchema, type DatasetConfig } from '../../../config/schema.ts';

export const metricsConfig: DatasetConfig = datasetSchema.parse({
  name: 'metrics',
  time_column: 'time',
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'sensor', type: 'string' },
    { name: 'value', type: 'double' },
    { name: 'hits', type: 'int' },
    { name: 'total', type: 'long' },
    { name: 'unit', type: 'string' },
    { name: 'ok', type: 'boolean' },
  ],
  partition_by: ['line'],
  stream_key: ['line', 'sensor'],
});

export const eventsConfig: DatasetConfig = datasetSchema.parse({
  name: 'events',
  time_column: 'time',
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'label', type: 'string' },
    { name: 'ok', type: 'boolean' },
  ],
  partition_by: ['line'],
});

/**
 * `n` metrics rows from `startUs`, `stepUs` apart (distinct times, so "last" has no
 * ties), shuffled; 2 lines × 3 sensors (one of them null), nulls in every measure,
 * doubles that are multiples of 1/4 (sums exact in any order).
 */
export function metricsRows(n: number, startUs: number, stepUs: number, seed = 0): RowValue[][] {
  const rows: RowValue[][] = [];
  for (let i = 0; i < n; i++) {
    const k = i + seed;
    rows.push([
      startUs + i * stepUs,
      `line_${k % 2}`,
      k % 3 === 2 ? null : `s${k % 3}`,
      k % 5 === 0 ? null : ((k * 37) % 101) / 4 - 10,
      k % 7 === 0 ? null : ((k * 13) % 50) - 20,
      k % 11 === 0 ? null : 2 ** 40 + k * 1000,
      k % 2 ? 'bar' : '°C',
      k % 3 === 0,
    ]);
  }
  for (let i = rows.length - 1; i > 0; i--) {
    const j = (i * 7919 + seed) % (i + 1);
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  return rows;
}
