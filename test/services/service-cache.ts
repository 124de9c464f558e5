// Where test services keep what they download (Maven jars, a Python venv, Go binaries),
// and the one way to provision a Java class path from Maven Central: a generated pom
// resolved once with `mvn dependency:copy-dependencies` into a versioned cache folder.
//
// Invariants:
// - Downloads are cached across runs: `LAKESIDE_SERVICES_CACHE`, else
//   ~/.cache/lakeside-test-services. Maven also keeps its own ~/.m2 cache.
// - A cache entry is used only when complete: it is filled in a temp folder and renamed
//   into place, so a run killed mid-download leaves no half entry behind.
// - Concurrent test processes provisioning the same entry wait on a lock directory
//   instead of downloading twice.
// - A provisioning failure throws with the command's output tail: CI must fail loudly,
//   never skip.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function servicesCacheDir(): string {
  const dir = process.env.LAKESIDE_SERVICES_CACHE ?? join(homedir(), '.cache', 'lakeside-test-services');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a command to completion; throws with the output tail when it fails or times out. */
export async function runCommand(
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; what?: string } = {},
): Promise<RunResult> {
  const what = opts.what ?? `${command} ${args.join(' ')}`;
  const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer): void => {
      output += d.toString('utf8');
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${what}: could not start ${command}: ${e.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ code, output });
      else {
        const tail = output.split('\n').slice(-40).join('\n');
        reject(new Error(`${what} failed (code ${code}, signal ${signal}):\n${tail}`));
      }
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Returns `<cache>/<name>` once `fill(tempDir)` has populated it. The entry is built in
 * a temp folder, then renamed into place; other processes wait on `<name>.lock`.
 */
export async function cachedEntry(name: string, fill: (dir: string) => Promise<void>, lockTimeoutMs = 30 * 60_000): Promise<string> {
  const root = servicesCacheDir();
  const dir = join(root, name);
  if (existsSync(dir)) return dir;
  const lock = join(root, `${name}.lock`);
  const deadline = Date.now() + lockTimeoutMs;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(dir)) return dir;
      // A lock left by a killed run: older than the timeout means nobody holds it.
      try {
        if (Date.now() - statSync(lock).mtimeMs > lockTimeoutMs) rmSync(lock, { recursive: true, force: true });
      } catch {
        // gone meanwhile
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (another run provisioning ${name}?)`);
      await sleep(500);
    }
  }
  try {
    if (existsSync(dir)) return dir;
    const temp = join(root, `${name}.tmp-${process.pid}`);
    rmSync(temp, { recursive: true, force: true });
    mkdirSync(temp, { recursive: true });
    await fill(temp);
    renameSync(temp, dir);
    return dir;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface MavenArtifact {
  groupId: string;
  artifactId: string;
  version: string;
  classifier?: string;
  /** Maven exclusions as `groupId:artifactId` (use `*:*` to take the jar alone). */
  exclusions?: string[];
}

function pomFor(artifacts: MavenArtifact[]): string {
  const deps = artifacts
    .map((a) => {
      const exclusions = (a.exclusions ?? [])
        .map((e) => {
          const [g, art] = e.split(':');
          return `<exclusion><groupId>${g}</groupId><artifactId>${art}</artifactId></exclusion>`;
        })
        .join('');
      return (
        `<dependency><groupId>${a.groupId}</groupId><artifactId>${a.artifactId}</artifactId><version>${a.version}</version>` +
        (a.classifier ? `<classifier>${a.classifier}</classifier>` : '') +
        (exclusions ? `<exclusions>${exclusions}</exclusions>` : '') +
        '</dependency>'
      );
    })
    .join('\n    ');
  return `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakeside.test</groupId>
  <artifactId>services</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    ${deps}
  </dependencies>
</project>
`;
}

/**
 * Resolves the artifacts and their runtime dependencies from Maven Central into a cached
 * folder of jars; returns the Java class path (`<dir>/lib/*`). The cache key is the
 * name plus a hash of the pom, so pinning another version makes a new entry.
 */
export async function mavenClasspath(name: string, artifacts: MavenArtifact[]): Promise<string> {
  const pom = pomFor(artifacts);
  const key = createHash('sha256').update(pom).digest('hex').slice(0, 12);
  const dir = await cachedEntry(`${name}-${key}`, async (temp) => {
    writeFileSync(join(temp, 'pom.xml'), pom);
    await runCommand(
      'mvn',
      ['-B', '-q', 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${join(temp, 'lib')}`],
      { cwd: temp, what: `provisioning ${name} from Maven Central` },
    );
    if (!existsSync(join(temp, 'lib')) || readdirSync(join(temp, 'lib')).length === 0) {
      throw new Error(`provisioning ${name}: Maven resolved no jars`);
    }
  });
  return `${join(dir, 'lib')}/*`;
}
