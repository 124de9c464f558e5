// The offline bundle and the installers, end to end:
// - `npm run bundle` builds the tarball (once for this file: about a minute);
// - unpacked in an empty directory, with a PATH that holds no node and no npm, the
//   bundle runs `lakeside --version` and a bounded `lakeside demo`;
// - install.sh into a temporary root, twice: the second run changes nothing; an upgrade
//   to another version keeps the edited config and the data and keeps the previous
//   release; systemd-analyze verifies the unit on the installed tree; the installed
//   command checks the installed config;
// - uninstall.sh keeps config, data and user (and can run twice); --purge removes them;
// - under a real systemd (a throwaway PID 1 in its own namespaces, on a copy-on-write
//   overlay of this machine): the service starts (Type=notify: READY=1 arrives), pings
//   the watchdog, ingests under the sandbox, stops cleanly, and is killed by the
//   watchdog and restarted when its landing writer hangs.
// Needs root (install.sh creates a user and chowns in the root, as on a real server; the
// throwaway systemd needs unshare and mount) and the Debian `systemd` package.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeBinary, REPO_ROOT } from '../support/child-daemon.ts';
import { framesDaemonConfigText } from '../support/folder-source.ts';
import { addSystemUnits, verifyUnit } from '../support/systemd-analyze.ts';
import { runCommand } from '../support/run-command.ts';
import { ThrowawaySystemd } from '../support/throwaway-systemd.ts';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const BUNDLE_NAME = `lakeside-${VERSION}-linux-x64`;

/** Every path under `root` with its type, mode, owner and content hash (symlinks by target). */
function snapshot(root: string): Map<string, string> {
  const entries = new Map<string, string>();
  const visit = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const rel = path.slice(root.length);
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) entries.set(rel, `link -> ${readlinkSync(path)}`);
      else if (st.isDirectory()) {
        entries.set(rel, `dir ${meta}`);
        visit(path);
      } else entries.set(rel, `file ${meta} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
    }
  };
  visit(root);
  return entries;
}

function lakesideLines(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('lakeside:'));
}

let work: string;
let tarball: string;
let bundle: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lakeside-bundle-'));
  // The bundle build runs on Node 24 (it ships the binary it runs on).
  const env = { ...process.env, PATH: `${dirname(nodeBinary())}${delimiter}${process.env.PATH ?? ''}` };
  const built = await runCommand('npm', ['run', 'bundle'], { cwd: REPO_ROOT, env, timeoutMs: 600_000 });
  expect(built.code, `npm run bundle failed:\n${built.stdout}\n${built.stderr}`).toBe(0);
  tarball = join(REPO_ROOT, 'dist', `${BUNDLE_NAME}.tar.gz`);
  expect(existsSync(tarball)).toBe(true);
  const checked = await runCommand('sha256sum', ['--check', `${BUNDLE_NAME}.tar.gz.sha256`], { cwd: dirname(tarball) });
  expect(checked.code, checked.stdout + checked.stderr).toBe(0);
  await mkdir(join(work, 'unpacked'));
  const unpacked = await runCommand('tar', ['-xzf', tarball, '-C', join(work, 'unpacked')]);
  expect(unpacked.code, unpacked.stderr).toBe(0);
  bundle = join(work, 'unpacked', BUNDLE_NAME);
}, 600_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the offline bundle', () => {
  it('holds the Node 24 runtime, the app outside node_modules, production dependencies only, and linux x64 native parts', () => {
    const nodeVersion = /^node (v\d+\.\d+\.\d+)$/m.exec(readFileSync(join(bundle, 'VERSION'), 'utf8'))?.[1];
    expect(nodeVersion).toMatch(/^v24\./);
    expect(statSync(join(bundle, 'node', 'bin', 'node')).mode & 0o111).not.toBe(0);
    expect(existsSync(join(bundle, 'app', 'agent', 'daemon.ts'))).toBe(true);
    expect(existsSync(join(bundle, 'app', 'bin', 'lakeside.js'))).toBe(true);
    const modules = readdirSync(join(bundle, 'app', 'node_modules'));
    expect(modules).toContain('better-sqlite3');
    expect(modules).not.toContain('vitest');
    expect(modules).not.toContain('typescript');
    expect(readdirSync(join(bundle, 'app', 'node_modules', '@duckdb'))).toContain('node-bindings-linux-x64');
  });

  it('runs `lakeside --version` and a bounded `lakeside demo` with no node or npm on PATH', async () => {
    // PATH: only what the launcher script itself calls (readlink, dirname).
    const bin = join(work, 'path');
    await mkdir(bin);
    for (const tool of ['readlink', 'dirname']) {
      const found = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p));
      expect(found, tool).toBeDefined();
      await symlink(found!, join(bin, tool));
    }
    expect(readdirSync(bin).sort()).toEqual(['dirname', 'readlink']);
    const env = { PATH: bin, HOME: work, LANG: 'C.UTF-8' };
    expect((await runCommand('sh', ['-c', 'command -v node || command -v npm'], { env: { ...env, PATH: bin } })).code).not.toBe(0);

    const version = await runCommand(join(bundle, 'bin', 'lakeside'), ['--version'], { env, cwd: work });
    expect(version, version.stderr).toMatchObject({ code: 0, stdout: `${VERSION}\n` });

    const demoDir = join(work, 'demo');
    const demo = await runCommand(join(bundle, 'bin', 'lakeside'), ['demo', '--duration', '4', '--dir', demoDir, '--api-port', '0'], { env, cwd: work, timeoutMs: 120_000 });
    expect(demo.code, `${demo.stdout}\n${demo.stderr}`).toBe(0);
    const published = /published (\d+) readings/.exec(demo.stderr);
    expect(Number(published?.[1])).toBeGreaterThan(0);
    expect(existsSync(join(demoDir, 'state', 'landing.db'))).toBe(true);
  });
});

describe('install.sh and uninstall.sh', () => {
  it('installs into a root, is idempotent, upgrades keeping config and data, uninstalls keeping them unless --purge', async () => {
    const root = join(work, 'root');
    const install = (from = bundle) => runCommand(join(from, 'install.sh'), ['--root', root]);
    const uninstall = (...args: string[]) => runCommand(join(root, 'opt', 'lakeside', 'current', 'uninstall.sh'), ['--root', root, ...args]);
    const at = (...parts: string[]) => join(root, ...parts);

    // First install.
    const first = await install();
    expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0);
    expect(readlinkSync(at('opt', 'lakeside', 'current'))).toBe(`releases/${VERSION}`);
    expect(readlinkSync(at('usr', 'local', 'bin', 'lakeside'))).toBe('/opt/lakeside/current/bin/lakeside');
    for (const [installed, source] of [
      [at('usr', 'local', 'lib', 'systemd', 'system', 'lakeside.service'), 'lakeside.service'],
      [at('usr', 'local', 'lib', 'sysusers.d', 'lakeside.conf'), 'lakeside.sysusers.conf'],
      [at('usr', 'local', 'lib', 'tmpfiles.d', 'lakeside.conf'), 'lakeside.tmpfiles.conf'],
      [at('etc', 'lakeside', 'lakeside.yaml'), 'lakeside.yaml'],
    ] as const) {
      expect(readFileSync(installed, 'utf8'), installed).toBe(readFileSync(join(REPO_ROOT, 'installers', source), 'utf8'));
    }
    const [user] = lakesideLines(at('etc', 'passwd'));
    expect(user).toMatch(/^lakeside:x:\d+:\d+:[^:]*:\/var\/lib\/lakeside:\/usr\/sbin\/nologin$/);
    const [uid, gid] = user!.split(':').slice(2, 4).map(Number);
    expect(statSync(at('var', 'lib', 'lakeside'))).toMatchObject({ uid, gid });
    expect(statSync(at('var', 'lib', 'lakeside')).mode & 0o777).toBe(0o750);
    expect(statSync(at('etc', 'lakeside', 'lakeside.yaml'))).toMatchObject({ uid: 0, gid });
    expect(statSync(at('etc', 'lakeside', 'lakeside.yaml')).mode & 0o777).toBe(0o640);
    expect(statSync(at('opt', 'lakeside', 'releases', VERSION, 'app', 'agent', 'daemon.ts')).mode & 0o022).toBe(0); // not writable by the service

    // Idempotent: the same bundle again changes nothing.
    const before = snapshot(root);
    const second = await install();
    expect(second.code, `${second.stdout}\n${second.stderr}`).toBe(0);
    expect(second.stdout).toMatch(/kept the existing \/etc\/lakeside\/lakeside.yaml/);
    expect(snapshot(root)).toEqual(before);
    expect(lakesideLines(at('etc', 'passwd'))).toHaveLength(1);
    expect(lakesideLines(at('etc', 'group'))).toHaveLength(1);

    // The installed tree: systemd-analyze verifies the unit (ExecStart exists), the installed command checks the config.
    const verifyRoot = join(work, 'verify-root');
    expect((await runCommand('cp', ['-al', root, verifyRoot])).code).toBe(0);
    await addSystemUnits(verifyRoot);
    expect(await verifyUnit(verifyRoot)).toEqual({ code: 0, output: '' });
    const check = await runCommand(at('opt', 'lakeside', 'current', 'bin', 'lakeside'), ['config', 'check', at('etc', 'lakeside', 'lakeside.yaml')]);
    expect(check.code, check.stderr).toBe(0);

    // Operator edits and data, then an upgrade to another version.
    const edited = `${readFileSync(at('etc', 'lakeside', 'lakeside.yaml'), 'utf8')}\n# edited by the plant's IT\n`;
    await writeFile(at('etc', 'lakeside', 'lakeside.yaml'), edited.replace('plant: my_plant', 'plant: ulm'));
    await writeFile(at('var', 'lib', 'lakeside', 'landing.db'), 'data that must survive');
    const next = join(work, 'next', BUNDLE_NAME.replace(VERSION, '99.0.0'));
    await mkdir(dirname(next), { recursive: true });
    expect((await runCommand('cp', ['-al', bundle, next])).code).toBe(0); // hard links: quick, and no file is edited in place
    await rm(join(next, 'VERSION'));
    await writeFile(join(next, 'VERSION'), readFileSync(join(bundle, 'VERSION'), 'utf8').replace(`lakeside ${VERSION}`, 'lakeside 99.0.0'));
    const manifest = readFileSync(join(bundle, 'MANIFEST.sha256'), 'utf8').replace(/^\w+ {2}VERSION$/m, `${createHash('sha256').update(readFileSync(join(next, 'VERSION'))).digest('hex')}  VERSION`);
    await rm(join(next, 'MANIFEST.sha256'));
    await writeFile(join(next, 'MANIFEST.sha256'), manifest);

    const upgrade = await install(next);
    expect(upgrade.code, `${upgrade.stdout}\n${upgrade.stderr}`).toBe(0);
    expect(upgrade.stdout).toMatch(new RegExp(`upgraded ${VERSION.replaceAll('.', '\\.')} -> 99\\.0\\.0`));
    expect(readlinkSync(at('opt', 'lakeside', 'current'))).toBe('releases/99.0.0');
    expect(readdirSync(at('opt', 'lakeside', 'releases')).sort()).toEqual([VERSION, '99.0.0'].sort()); // the previous one, for a rollback
    expect(readFileSync(at('etc', 'lakeside', 'lakeside.yaml'), 'utf8')).toContain('plant: ulm');
    expect(readFileSync(at('var', 'lib', 'lakeside', 'landing.db'), 'utf8')).toBe('data that must survive');
    const upgraded = await runCommand(at('opt', 'lakeside', 'current', 'bin', 'lakeside'), ['--version']);
    expect(upgraded.code, upgraded.stderr).toBe(0);

    // A tampered bundle is refused before anything changes.
    const tampered = join(work, 'tampered', BUNDLE_NAME);
    await mkdir(dirname(tampered), { recursive: true });
    expect((await runCommand('cp', ['-al', bundle, tampered])).code).toBe(0);
    await rm(join(tampered, 'app', 'agent', 'daemon.ts'));
    await writeFile(join(tampered, 'app', 'agent', 'daemon.ts'), '// not the shipped file\n');
    const beforeTampered = snapshot(root);
    const refused = await install(tampered);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/MANIFEST\.sha256 mismatch/);
    expect(snapshot(root)).toEqual(beforeTampered);

    // Uninstall keeps config, data and the user; a second run is fine too.
    const removed = await uninstall();
    expect(removed.code, `${removed.stdout}\n${removed.stderr}`).toBe(0);
    for (const gone of [at('opt', 'lakeside'), at('usr', 'local', 'bin', 'lakeside'), at('usr', 'local', 'lib', 'systemd', 'system', 'lakeside.service'), at('usr', 'local', 'lib', 'sysusers.d', 'lakeside.conf'), at('usr', 'local', 'lib', 'tmpfiles.d', 'lakeside.conf')]) {
      expect(existsSync(gone), gone).toBe(false);
    }
    expect(readFileSync(at('etc', 'lakeside', 'lakeside.yaml'), 'utf8')).toContain('plant: ulm');
    expect(readFileSync(at('var', 'lib', 'lakeside', 'landing.db'), 'utf8')).toBe('data that must survive');
    expect(lakesideLines(at('etc', 'passwd'))).toHaveLength(1);
    const again = await runCommand(join(bundle, 'uninstall.sh'), ['--root', root]);
    expect(again.code, again.stderr).toBe(0);

    // --purge removes config, data and the user.
    const purged = await runCommand(join(bundle, 'uninstall.sh'), ['--root', root, '--purge']);
    expect(purged.code, `${purged.stdout}\n${purged.stderr}`).toBe(0);
    expect(existsSync(at('etc', 'lakeside'))).toBe(false);
    expect(existsSync(at('var', 'lib', 'lakeside'))).toBe(false);
    expect(lakesideLines(at('etc', 'passwd'))).toHaveLength(0);
    expect(lakesideLines(at('etc', 'group'))).toHaveLength(0);
  });

  it('refuses to run outside an unpacked bundle', async () => {
    const result = await runCommand('bash', [join(REPO_ROOT, 'installers', 'install.sh'), '--root', join(work, 'nowhere')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/not an unpacked lakeside bundle/);
  });
});

describe('under a real systemd', () => {
  const CONFIG = framesDaemonConfigText('/var/lib/lakeside', '/srv/lakeside/drop', 'info', 7070);
  /** A drop-in for the test: a short watchdog (pings every second) and start timeout; optionally a failpoint. */
  const dropIn = (extra = '') => `mkdir -p /etc/systemd/system/lakeside.service.d && printf '[Service]\\nWatchdogSec=3s\\nTimeoutStartSec=60s\\n${extra}' > /etc/systemd/system/lakeside.service.d/test.conf && systemctl daemon-reload`;
  /** A camera frame dropped as the lakeside user would find it (the drop folder is the service's to empty). */
  const dropFrame = (name: string) => `install -d -o lakeside -g lakeside /srv/lakeside/drop/l1/c1 && echo frame > /srv/lakeside/drop/l1/c1/${name} && chown lakeside: /srv/lakeside/drop/l1/c1/${name}`;

  let systemd: ThrowawaySystemd | undefined;
  let bootError: Error | undefined;

  beforeAll(async () => {
    try {
      systemd = await ThrowawaySystemd.boot(bundle);
    } catch (error) {
      bootError = error as Error;
    }
  }, 120_000);
  afterAll(async () => {
    await systemd?.shutdown();
  });

  it('starts as Type=notify, pings the watchdog, ingests in its sandbox, stops cleanly; a hung landing writer gets it killed and restarted', async (ctx) => {
    if (bootError) {
      if (process.env.CI === 'true') throw bootError;
      ctx.skip(`no throwaway systemd here: ${bootError.message}`);
    }
    const sd = systemd!;
    const ok = async (command: string) => {
      const result = await sd.exec(command);
      if (result.code !== 0) {
        const journal = (await sd.exec('journalctl -u lakeside -n 40 --no-pager')).stdout;
        expect.fail(`${command} exited ${result.code}\n${result.stdout}\n${result.stderr}\njournal:\n${journal}`);
      }
      return result.stdout;
    };
    await ok('/bundle/install.sh');
    await ok(`cat > /etc/lakeside/lakeside.yaml <<'EOF'${CONFIG}EOF`);
    await ok('install -d -o lakeside -g lakeside /srv/lakeside /srv/lakeside/drop');
    await ok(dropIn());
    // Type=notify: `systemctl start` returns once READY=1 came (or fails after TimeoutStartSec).
    await ok('systemctl enable --now lakeside');
    const started = await sd.show('lakeside', 'ActiveState', 'StatusText', 'MainPID', 'WatchdogUSec', 'WatchdogTimestampMonotonic');
    expect(started).toMatchObject({ ActiveState: 'active', WatchdogUSec: '3s', StatusText: expect.stringMatching(/^ingesting from 1 source/) });
    // The daemon itself is the main process (NODE_OPTIONS holds its flags): one process in the unit.
    const nodes = await ok(`for pid in $(cat /sys/fs/cgroup/system.slice/lakeside.service/cgroup.procs); do grep -qa node/bin/node /proc/$pid/cmdline 2>/dev/null && echo $pid; done; true`);
    expect(nodes.trim().split('\n')).toEqual([started.MainPID]);

    // The health loop pings: systemd's watchdog timestamp moves.
    await waitUntil(async () => (await sd.show('lakeside', 'WatchdogTimestampMonotonic')).WatchdogTimestampMonotonic !== started.WatchdogTimestampMonotonic, 'a watchdog ping');

    // Ingest under ProtectSystem=strict: the frame lands and its file is deleted from the drop folder.
    await ok(dropFrame('a.png'));
    await waitUntil(async () => (await sd.exec('test -e /srv/lakeside/drop/l1/c1/a.png')).code === 1, 'the dropped frame to be taken');
    const framesStored = async () => {
      const { stdout } = await sd.exec('lakeside query --format json "SELECT count(*) AS n FROM frames"');
      return stdout.startsWith('{') ? Number((JSON.parse(stdout) as { rows: unknown[][] }).rows[0]?.[0]) : NaN;
    };
    await waitUntil(async () => (await framesStored()) === 1, 'the frame to be queryable');

    // A clean stop: SIGTERM, drain, exit 0, and no failed notification on the way.
    await ok('systemctl stop lakeside');
    expect(await sd.show('lakeside', 'Result', 'ExecMainStatus')).toEqual({ Result: 'success', ExecMainStatus: '0' });
    expect(await ok('journalctl -u lakeside --no-pager')).not.toMatch(/systemd notification failed/);

    // The landing writer hangs in a commit: pings stop, systemd kills it (SIGABRT) and restarts it.
    await ok(dropIn('Environment=LAKESIDE_FAILPOINTS=landing.before-commit\\n'));
    await ok('systemctl start lakeside');
    await ok(dropFrame('b.png'));
    await waitUntil(async () => /Failed with result 'watchdog'/.test((await sd.exec('journalctl _PID=1 -u lakeside --no-pager')).stdout), "systemd's watchdog to fire", 60_000);
    const journal = await ok('journalctl _PID=1 --no-pager | grep lakeside.service');
    expect(journal).toMatch(/Watchdog timeout \(limit 3s\)/);
    await waitUntil(async () => Number((await sd.show('lakeside', 'NRestarts')).NRestarts) >= 1, 'the restart after the watchdog', 60_000);
    await ok('systemctl stop lakeside');
  });
});

async function waitUntil(cond: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
