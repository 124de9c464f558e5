import { describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../../config/dataset.ts';
import { datasetSchema } from '../../../../config/schema.ts';
import {
  lastColumnId,
  missingFields,
  partitionSpecFor,
  PLANT_FIELD_ID,
  plantColumnConflict,
  tableSchemaFor,
} from '../../../../sync/iceberg/table-schema.ts';

const config = {
  name: 'quality',
  time_column: 'inspected_at',
  time_field_id: 7,
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'station', type: 'int', field_id: 40 },
    { name: 'score', type: 'double' },
    { name: 'passed', type: 'boolean', nullable: false },
    { name: 'serial', type: 'long' },
    { name: 'taken_at', type: 'timestamp' },
    { name: 'photo', type: 'blob' },
  ],
  partition_by: ['line', 'station'],
};
const dataset = resolveDataset(datasetSchema.parse(config));

describe('table schema of a dataset', () => {
  it('keeps the dataset field ids, maps the types, and adds the plant column', () => {
    expect(tableSchemaFor(dataset)).toEqual({
      type: 'struct',
      'schema-id': 0,
      fields: [
        { id: 7, name: 'inspected_at', required: true, type: 'timestamptz' },
        { id: 1, name: 'line', required: true, type: 'string' },
        { id: 40, name: 'station', required: false, type: 'int' },
        { id: 2, name: 'score', required: false, type: 'double' },
        { id: 3, name: 'passed', required: true, type: 'boolean' },
        { id: 4, name: 'serial', required: false, type: 'long' },
        { id: 5, name: 'taken_at', required: false, type: 'timestamptz' },
        { id: 6, name: 'photo', required: false, type: 'string' },
        { id: PLANT_FIELD_ID, name: 'plant', required: false, type: 'string' },
      ],
    });
    expect(lastColumnId(tableSchemaFor(dataset))).toBe(100_000);
  });

  it('partitions by day(time), identity(plant), then the partition_by columns', () => {
    expect(partitionSpecFor(dataset)).toEqual({
      'spec-id': 0,
      fields: [
        { 'source-id': 7, 'field-id': 1000, name: 'inspected_at_day', transform: 'day' },
        { 'source-id': PLANT_FIELD_ID, 'field-id': 1001, name: 'plant', transform: 'identity' },
        { 'source-id': 1, 'field-id': 1002, name: 'line', transform: 'identity' },
        { 'source-id': 40, 'field-id': 1003, name: 'station', transform: 'identity' },
      ],
    });
  });

  it('names the dataset columns a table lacks, by field id, as optional fields', () => {
    const grown = resolveDataset(datasetSchema.parse({ ...config, columns: [...config.columns, { name: 'operator', type: 'string', nullable: false }] }));
    expect(missingFields(grown, tableSchemaFor(dataset))).toEqual([{ id: 8, name: 'operator', required: false, type: 'string' }]);
    expect(missingFields(dataset, tableSchemaFor(dataset))).toEqual([]);
  });

  it('refuses a dataset that uses the plant name or a reserved id', () => {
    const named = { ...dataset, columns: [...dataset.columns, { name: 'plant', type: 'string' as const, nullable: true, fieldId: 9 }] };
    expect(plantColumnConflict(named)).toMatch(/quality.*"plant" is reserved/);
    expect(() => tableSchemaFor(named)).toThrow(/reserved/);
    const high = { ...dataset, columns: [...dataset.columns, { name: 'x', type: 'long' as const, nullable: true, fieldId: 100_000 }] };
    expect(plantColumnConflict(high)).toMatch(/column x has field_id 100000/);
    expect(plantColumnConflict(dataset)).toBeNull();
  });
});

describe('config validation of the reserved plant column', () => {
  const issues = (patch: Record<string, unknown>): string[] => {
    const result = datasetSchema.safeParse({ ...config, ...patch });
    return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('refuses a column or time column named plant, naming the dataset', () => {
    expect(issues({ columns: [...config.columns, { name: 'plant', type: 'string' }] })).toEqual([
      'columns.7.name: dataset "quality": the column name "plant" is reserved for the Iceberg table\'s plant column',
    ]);
    expect(issues({ time_column: 'plant' })).toHaveLength(1);
  });

  it('refuses field ids from 100000, naming the dataset and column', () => {
    expect(issues({ columns: [...config.columns, { name: 'big', type: 'long', field_id: 100_000 }] })).toEqual([
      'columns.7.field_id: dataset "quality", column "big": field ids from 100000 are reserved (got 100000)',
    ]);
    expect(issues({ time_field_id: 123_456 })[0]).toMatch(/time_field_id: .*reserved/);
    expect(issues({ columns: [...config.columns, { name: 'ok', type: 'long', field_id: 99_999 }] })).toEqual([]);
  });
});
