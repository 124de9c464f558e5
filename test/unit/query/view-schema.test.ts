/** Dataset views read their files with union_by_name only when the files' column sets differ (views.ts filesShareSchema). */
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../../agent/hot/atomic-file.ts';
import { columnsFromRows, timeValues } from '../../../agent/hot/columns.ts';
import { encodeParquet } from '../../../agent/hot/parquet-writer.ts';
import { l0Path } from '../../../agent/hot/paths.ts';
import { insertHotFiles, newHotFile } from '../../../agent/hot/registry.ts';
import { HOT_LEVEL } from '../../../agent/landing/schema.ts';
import { RegistryReader } from '../../../agent/query/registry-reader.ts';
import { fieldIdSignature, filesShareSchema } from '../../../agent/query/views.ts';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { MINUTE, sensorRows, sensorsConfig, T0 } from '../hot/fixture.ts';
import { createEngineFixture, type EngineFixture } from './engine-fixture.ts';
import { join } from 'node:path';

let ef: EngineFixture | undefined;
afterEach(async () => {
  await ef?.close();
  ef = undefined;
});

/** sensors with one more column: a schema evolution after files were written. */
const evolvedConfig = datasetSchema.parse({ ...sensorsConfig, columns: [...sensorsConfig.columns, { name: 'site', type: 'string' }] });

async function viewSql(e: EngineFixture, name: string): Promise<string> {
  const result = await e.engine.query(`SELECT sql FROM duckdb_views() WHERE view_name = '${name}'`);
  return String(result.rows[0]?.[0]);
}

describe('dataset views and union_by_name', () => {
  it('files with exactly the current columns are read without union_by_name', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const sensors = ef.fx.datasets[0]!;
    ef.fx.land(sensors, sensorRows(10, T0 + 1, MINUTE / 10));
    ef.seal();
    ef.fx.land(sensors, sensorRows(5, T0 + 20 * MINUTE, MINUTE / 10, 'late'));
    ef.seal();
    await ef.engine.refreshFromRegistry();
    expect(ef.engine.viewedFiles().get('sensors')!.length).toBeGreaterThan(1);
    const reader = new RegistryReader(ef.fx.dbPath);
    const files = reader.hotFiles().get('sensors')!;
    reader.close();
    expect(files.dataFieldIds).toEqual([fieldIdSignature(sensors)]);
    expect(await viewSql(ef, 'sensors')).toMatch(/union_by_name = CAST\('f'/);
    const result = await ef.engine.query("SELECT count(*), count(*) FILTER (WHERE sensor LIKE 'late%'), count(value), min(time) FROM sensors");
    expect(result.rows[0]!.slice(0, 3)).toEqual([15, 5, 12]);
    expect((await ef.engine.query('DESCRIBE sensors')).rows.map((r) => [r[0], r[1]])).toEqual([
      ['time', 'TIMESTAMP WITH TIME ZONE'], ['line', 'VARCHAR'], ['sensor', 'VARCHAR'], ['value', 'DOUBLE'], ['unit', 'VARCHAR'],
    ]);
  });

  it('files from before a new column keep union_by_name: old rows show it as NULL, typed', async () => {
    ef = await createEngineFixture([evolvedConfig]);
    const evolved = ef.fx.datasets[0]!;
    // A file written under the old schema, registered first (so it is also the first file read).
    const old = resolveDataset(sensorsConfig);
    const batch = columnsFromRows(old, sensorRows(6, T0 + 1, MINUTE / 10, 'old'), 0);
    const { bytes, stats } = encodeParquet(old, batch, { rowGroupRows: 1000 });
    const path = l0Path('sensors', T0, 900_001, 900_001);
    writeFileAtomic(join(ef.fx.stateDir, path), bytes);
    const times = [...timeValues(batch)].sort((a, b) => a - b);
    const fields = { dataset: 'sensors', level: HOT_LEVEL.L0, path, window_start_us: T0, partition_json: '{}', file_size_bytes: bytes.length, created_at_us: T0 };
    insertHotFiles(ef.fx.db, [newHotFile(fields, stats, times[0]!, times[times.length - 1]!)]);
    // Then rows under the new schema, sealed the ordinary way.
    ef.fx.land(evolved, sensorRows(4, T0 + 20 * MINUTE, MINUTE / 10, 'new').map((r) => [...r, 'plant_a']));
    ef.seal();
    await ef.engine.refreshFromRegistry();
    expect(filesShareSchema(evolved, ['1,2,3,4,5', fieldIdSignature(evolved)])).toBe(false);
    expect(await viewSql(ef, 'sensors')).toMatch(/union_by_name = CAST\('t'/);
    const result = await ef.engine.query("SELECT count(*), count(site), count(*) FILTER (WHERE sensor LIKE 'old%' AND site IS NULL) FROM sensors");
    expect(result.rows).toEqual([[10, 4, 6]]);
    const described = await ef.engine.query('DESCRIBE sensors');
    expect(described.rows.map((r) => [r[0], r[1]])).toContainEqual(['site', 'VARCHAR']);
  });

  it('unknown or missing stats keep union_by_name', () => {
    const sensors = resolveDataset(sensorsConfig);
    expect(fieldIdSignature(sensors)).toBe('1,2,3,4,5');
    expect(filesShareSchema(sensors, ['1,2,3,4,5'])).toBe(true);
    expect(filesShareSchema(sensors, [''])).toBe(false);
    expect(filesShareSchema(sensors, ['1,2,3,4'])).toBe(false);
    expect(filesShareSchema(sensors, [])).toBe(false);
  });
});
