/** The sensor-readings dataset (time, line, sensor, value, unit; partitioned by line) that hot-tier tests and the seal benchmark land. */
import { datasetSchema, type DatasetConfig } from '../../config/schema.ts';

const sensorColumns = [
  { name: 'line', type: 'string', nullable: false },
  { name: 'sensor', type: 'string', nullable: false },
  { name: 'value', type: 'double' },
  { name: 'unit', type: 'string' },
];

export const sensorsConfig: DatasetConfig = datasetSchema.parse({
  name: 'sensors',
  time_column: 'time',
  columns: sensorColumns,
  partition_by: ['line'],
});

/** The same columns as `readings`, one stream per line and sensor (latest values, `tail`, freshness). */
export const keyedReadingsConfig: DatasetConfig = datasetSchema.parse({
  name: 'readings',
  time_column: 'time',
  columns: sensorColumns,
  stream_key: ['line', 'sensor'],
  partition_by: ['line'],
});
