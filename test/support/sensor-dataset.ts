/** The sensor-readings dataset (time, line, sensor, value, unit; partitioned by line) that hot-tier tests and the seal benchmark land. */
import { datasetSchema, type DatasetConfig } from '../../config/schema.ts';

export const sensorsConfig: DatasetConfig = datasetSchema.parse({
  name: 'sensors',
  time_column: 'time',
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'sensor', type: 'string', nullable: false },
    { name: 'value', type: 'double' },
    { name: 'unit', type: 'string' },
  ],
  partition_by: ['line'],
});
