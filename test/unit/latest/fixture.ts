/** Datasets and row builders for the latest-value cache tests. */
import { resolveDataset, type Dataset, type RowValues } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import type { LandingRow } from '../../../agent/landing/types.ts';

export const T0_MS = Date.parse('2025-03-01T08:00:00Z');
export const T0_US = T0_MS * 1000;

/** time, line, sensor, value (double), unit (string), ok (boolean); stream key line + sensor. */
export const sensors: Dataset = resolveDataset(
  datasetSchema.parse({
    name: 'sensors',
    time_column: 'time',
    columns: [
      { name: 'line', type: 'string', nullable: false },
      { name: 'sensor', type: 'string', nullable: false },
      { name: 'value', type: 'double' },
      { name: 'unit', type: 'string' },
      { name: 'ok', type: 'boolean' },
    ],
    stream_key: ['line', 'sensor'],
  }),
);

/** time, label, frame (blob); no stream key: one stream. */
export const inspections: Dataset = resolveDataset(
  datasetSchema.parse({
    name: 'inspections',
    time_column: 'time',
    columns: [
      { name: 'label', type: 'string' },
      { name: 'frame', type: 'blob' },
    ],
  }),
);

export function sensorRow(timeUs: number, line: string, sensor: string, value: number | null, unit = 'pct', ok = true): LandingRow {
  const values: RowValues = [timeUs, line, sensor, value, unit, ok];
  return { dataset: 'sensors', values };
}

/** A settable clock in ms. */
export function clock(startMs = T0_MS): { now: () => number; set: (ms: number) => void; advance: (ms: number) => void } {
  let ms = startMs;
  return { now: () => ms, set: (v) => (ms = v), advance: (d) => (ms += d) };
}
