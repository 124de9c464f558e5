// `lakeside tiers` as an operator runs it (the real CLI in a child process) beside a
// tier map that is draining: once, it prints the table and the drain estimate; with
// --watch it redraws with a progress bar of the drain and exits when the backlog is empty.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { runCommand } from '../../support/run-command.ts';
import { createTieringFixture, fixtureConfigYaml, type TieringFixture } from '../tiering/fixture.ts';

const CLI = join(import.meta.dirname, '../../../bin/lakeside.js');

describe('lakeside tiers', () => {
  let fx: TieringFixture | undefined;
  afterEach(() => fx?.close());

  it('shows the backlog and its drain estimate; --watch draws a progress bar until the backlog is drained', async () => {
    fx = await createTieringFixture();
    for (let i = 0; i < 4; i++) fx.addL1('inspections', { bytes: 10_000, ageHours: 5 - i });
    await discoverNewFiles(fx.db, fx.map, fx.stateDir, { plant: 'ulm', agentId: 'ulm' }, fx.clock.ms * 1000);
    const ids = fx.map.all().map((r) => r.id);
    const configPath = join(fx.stateDir, '..', `${fx.stateDir.split('/').pop()}.yaml`);
    writeFileSync(configPath, fixtureConfigYaml(fx));
    // One file uploaded a moment ago: a rate, so a drain estimate.
    const upload = (id: number) => fx!.map.markUploaded(id, Date.now() * 1000);
    upload(ids[0]!);

    const once = await runCommand(process.execPath, [CLI, 'tiers', '--config', configPath], { timeoutMs: 30_000 });
    expect(once.stderr).not.toMatch(/Error/);
    expect(once.code).toBe(0);
    expect(once.stdout).toMatch(/inspections\s+4 \/ 39\.1 KiB\s+1 \/ 9\.8 KiB/);
    expect(once.stdout).toMatch(/upload backlog 29\.3 KiB, recent rate [\d.]+ (B|KiB)\/s, drained in \d/);
    expect(once.stdout).not.toContain('%');

    // --watch while the rest drains (the test plays the uploader, one file at a time).
    const child = spawn(process.execPath, [CLI, 'tiers', '--config', configPath, '--watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    for (const id of ids.slice(1)) {
      await new Promise((resolve) => setTimeout(resolve, 700));
      upload(id);
    }
    const code = await exited;
    clearTimeout(killer);
    expect(code).toBe(0);
    const bars = [...stdout.matchAll(/\[([#.]{30})\] (\d+) %/g)].map((m) => Number(m[2]));
    expect(bars.length).toBeGreaterThan(0);
    expect(bars.at(-1)).toBe(100);
    // The bar only moves forward.
    expect(bars).toEqual([...bars].sort((a, b) => a - b));
    expect(stdout.slice(stdout.lastIndexOf('\x1b[2J'))).toMatch(/upload backlog 0 B, .*drained in 0 s/);
  }, 60_000);
});
