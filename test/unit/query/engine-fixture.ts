/** A hot-tier fixture (landing DB + sealed L0 files in a temp state dir) with a started QueryEngine over it. */
import { sealDataset } from '../../../agent/hot/seal.ts';
import { QueryEngine } from '../../../agent/query/query-engine.ts';
import type { DatasetConfig, LakesideConfig } from '../../../config/schema.ts';
import { createFixture, sealOptions, type Fixture } from '../hot/fixture.ts';

export const silentLogger = { info: () => {}, warn: () => {}, error: () => {} };

export const queryDefaults: LakesideConfig['query'] = {
  memory_limit_bytes: 512 * 1024 * 1024,
  threads: 2,
  timeout_ms: 30_000,
  max_rows: 1_000_000,
  max_result_bytes: 256 * 1024 * 1024,
};

export interface EngineFixture {
  fx: Fixture;
  engine: QueryEngine;
  seal(): void;
  close(): Promise<void>;
}

export async function createEngineFixture(configs: DatasetConfig[], query: Partial<LakesideConfig['query']> = {}): Promise<EngineFixture> {
  const fx = createFixture(configs);
  const engine = new QueryEngine({
    stateDir: fx.stateDir,
    dbPath: fx.dbPath,
    datasets: configs,
    query: { ...queryDefaults, ...query },
    logger: silentLogger,
    quarantineRefreshMs: 0,
  });
  await engine.start();
  return {
    fx,
    engine,
    seal() {
      for (const dataset of fx.datasets) sealDataset(fx.db, dataset, fx.stateDir, sealOptions);
    },
    async close() {
      await engine.stop();
      fx.close();
    },
  };
}
