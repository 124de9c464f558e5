// `lakeside reconcile` as an operator runs it (the real CLI in a child process) on a
// state directory whose files were committed to the file-system catalog: a dry run
// reports and changes nothing; the real run marks committed what the catalog holds.
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { catalogSchema } from '../../../config/catalog-schema.ts';
import { silentLogger } from '../../../agent/log.ts';
import { Committer } from '../../../sync/committer.ts';
import { FileSystemCatalog } from '../../../sync/fs-catalog.ts';
import { locationOf, storeLocation, StoreTableFileIO } from '../../../sync/table-io-stores.ts';
import type { TableReconciliation } from '../../../sync/reconcile.ts';
import { runCommand } from '../../support/run-command.ts';
import { createTieringFixture, DATASETS, fixtureConfigYaml, type TieringFixture } from '../tiering/fixture.ts';
import { uploadedFile } from '../sync/uploaded-file.ts';

const CLI = join(import.meta.dirname, '../../../bin/lakeside.js');

describe('lakeside reconcile', () => {
  let fx: TieringFixture | undefined;
  afterEach(() => fx?.close());

  it('--dry-run reports files the catalog holds but the state lost and changes nothing; the real run marks them committed', async () => {
    fx = await createTieringFixture();
    const files = [uploadedFile(fx, { agentId: 'ulm_1' }), uploadedFile(fx, { agentId: 'ulm_1' })];
    const base = storeLocation(fx.warm);
    const committer = new Committer({
      dbPath: fx.dbPath,
      stateDir: fx.stateDir,
      catalog: new FileSystemCatalog({ store: fx.warm, rootPrefix: 'iceberg' }),
      io: new StoreTableFileIO({ mounts: [{ base, store: fx.warm }] }),
      config: catalogSchema.parse({}),
      datasets: DATASETS,
      plant: 'ulm',
      agentId: 'ulm_1',
      warmLocation: (key) => locationOf(base, key),
      coldLocation: () => {
        throw new Error('no cold store');
      },
      logger: silentLogger(),
    });
    await committer.start();
    await committer.commit(files);
    await committer.pass();
    await committer.stop();
    fx.close();
    const configPath = join(fx.stateDir, '..', `${fx.stateDir.split('/').pop()}.yaml`);
    writeFileSync(configPath, fixtureConfigYaml(fx, { agentId: 'ulm_1' }));

    const clean = await runCommand(process.execPath, [CLI, 'reconcile', '--config', configPath, '--dry-run', '--json']);
    expect(clean.stderr).not.toMatch(/Error/);
    expect(clean.code).toBe(0);
    expect((JSON.parse(clean.stdout) as TableReconciliation[]).find((r) => r.dataset === 'inspections')).toMatchObject({ inCatalog: 2, committedAndPresent: 2 });

    // A state restored from an old backup: outbox and tier map think the files are only uploaded.
    const db = new Database(fx.dbPath);
    db.prepare(`UPDATE sync_files SET state = 'waiting', seq = NULL`).run();
    db.prepare(`UPDATE tier_files SET state = 'uploaded', committed_us = NULL`).run();
    const dry = await runCommand(process.execPath, [CLI, 'reconcile', '--config', configPath, '--dry-run']);
    expect(dry.code).toBe(1);
    expect(dry.stdout).toMatch(/in the catalog, not committed here \(would be marked committed/);
    expect((db.prepare(`SELECT COUNT(*) AS n FROM tier_files WHERE state = 'committed'`).get() as { n: number }).n).toBe(0);

    const real = await runCommand(process.execPath, [CLI, 'reconcile', '--config', configPath, '--json']);
    expect(real.code).toBe(1); // differences were found (and fixed)
    expect((JSON.parse(real.stdout) as TableReconciliation[]).find((r) => r.dataset === 'inspections')!.markedCommitted).toHaveLength(2);
    expect((db.prepare(`SELECT COUNT(*) AS n FROM tier_files WHERE state = 'committed'`).get() as { n: number }).n).toBe(2);
    db.close();
  });
});
