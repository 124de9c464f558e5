/**
 * `lakeside policy …`: the central team's tools for signed tiering policies (issue 7).
 *
 *   keygen --out DIR --key-id ID      DIR/ID.pem (private, PKCS#8, mode 0600, never
 *                                     overwritten), DIR/ID.pub.pem and DIR/ID.pub (raw
 *                                     base64, what goes in an agent's trusted_keys)
 *   sign FILE --key ID.pem --key-id ID           writes FILE.sig (signature.ts format)
 *   verify FILE [--sig S] --trusted K… | --config agent.yaml
 *   validate FILE [--plant P] [--config agent.yaml]  schema + safety checks per plant,
 *                                     and the effective policy table per dataset
 *   diff OLD NEW                      what changes, per plant and dataset
 *   publish FILE --to s3://bucket/key|file:///dir/name [--sig S] --trusted K… | --config …
 *                                     verifies first, then uploads the .sig, then FILE
 *   schema                            the document's JSON Schema
 *
 * A trusted key file (`--trusted`) is `ID.pub` (raw base64) or `ID.pub.pem` (PEM); its
 * key id is the file name without those suffixes, or give it as `ID=PATH`.
 * Exit codes: 0 ok; 1 the check said no (signature, refusal) or the upload failed;
 * 2 bad input (unreadable file, bad flag, invalid config, unparsable document).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { z } from 'zod';
import { ConfigError, loadConfigFile, type LoadedConfig } from '../../config/loader.ts';
import { agentPolicyConfigSchema, policyDocumentSchema, type EffectivePolicy } from '../../config/policy-schema.ts';
import { configSchema } from '../../config/schema.ts';
import { DEFAULT_TIERING } from '../../config/tiering-schema.ts';
import { diffPolicies } from '../../sync/policy/diff.ts';
import { parsePolicyDocument } from '../../sync/policy/parse.ts';
import { publishPolicy } from '../../sync/policy/publish.ts';
import { policyStoreConfig } from '../../sync/policy/store-config.ts';
import type { PolicyBase } from '../../sync/policy/resolve.ts';
import { encodeSignatureFile, generateSigningKeyPair, parsePublicKey, signDocument, verifySignature, type TrustedKey } from '../../sync/policy/signature.ts';
import { checkPolicyDocument } from '../../sync/policy/validate.ts';
import { openStore } from '../../tiering/stores/open-store.ts';
import { formatTable } from './table.ts';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  exit(code: number): void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  exit: (code) => {
    process.exitCode = code;
  },
};

/** A failure with the exit code it means (see the header). */
class CliFailure extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CliFailure(2, `cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

async function loadConfig(path: string): Promise<LoadedConfig> {
  try {
    return await loadConfigFile(path, { resolveSecrets: false });
  } catch (error) {
    if (error instanceof ConfigError) throw new CliFailure(2, error.message);
    throw error;
  }
}

function keyIdOf(path: string): string {
  return basename(path).replace(/\.pub\.pem$|\.pub$|\.pem$/, '');
}

async function trustedKeys(options: { trusted?: string[]; config?: string }): Promise<TrustedKey[]> {
  if (options.trusted && options.trusted.length > 0) {
    return Promise.all(
      options.trusted.map(async (spec) => {
        const eq = spec.indexOf('=');
        const [id, path] = eq > 0 && !existsSync(spec) ? [spec.slice(0, eq), spec.slice(eq + 1)] : [keyIdOf(spec), spec];
        const public_key = (await readInput(path, 'trusted key')).toString('utf8').trim();
        try {
          parsePublicKey(public_key);
        } catch (error) {
          throw new CliFailure(2, `trusted key ${path}: ${(error as Error).message}`);
        }
        return { id, public_key };
      }),
    );
  }
  if (options.config) {
    const { config } = await loadConfig(options.config);
    if (!config.policy) throw new CliFailure(2, `${options.config} has no policy section (policy.trusted_keys)`);
    return config.policy.trusted_keys;
  }
  throw new CliFailure(2, 'name the trusted public keys: --trusted KEYFILE… or --config agent.yaml');
}

function parseOrFail(bytes: Uint8Array, path: string) {
  const parsed = parsePolicyDocument(bytes);
  if (!parsed.ok) throw new CliFailure(2, `invalid policy ${path}: ${parsed.reason}`);
  return parsed.document;
}

const DEFAULT_BASE: PolicyBase = { tiering: DEFAULT_TIERING, hot: configSchema.shape.hot.parse(undefined) };
const DEFAULT_FLOORS = agentPolicyConfigSchema.shape.floors.parse(undefined);

export function renderEffective(effective: EffectivePolicy): string {
  const n = (v: number | null, unit = '') => (v === null ? 'none' : `${v}${unit}`);
  const rows = Object.entries(effective.datasets).map(([dataset, p]) => [
    dataset,
    `${p.hot_retention_hours} h`,
    p.warm_retention_days === null ? 'never to cold' : `${p.warm_retention_days} d`,
    p.cold_retention_days === null ? 'for ever' : `${p.cold_retention_days} d`,
    p.cold_storage_class ?? '-',
    `${p.compaction_window_minutes} min`,
    n(p.target_file_bytes),
    p.priority,
    n(p.bandwidth_share),
    p.upload_windows.length === 0 ? 'always' : p.upload_windows.join(' | '),
    p.overflow,
  ]);
  const table = formatTable(['dataset', 'hot', 'warm', 'cold', 'class', 'compaction', 'target bytes', 'prio', 'share', 'windows', 'overflow'], rows);
  const cap = effective.bandwidthBytesPerSecond === null ? 'no cap' : `${effective.bandwidthBytesPerSecond} B/s`;
  return `${table}bandwidth: ${cap}\n${effective.warnings.map((w) => `warning: ${w}\n`).join('')}`;
}

/** `s3://bucket/a/b.yaml` → store `s3://bucket`, key `a/b.yaml`; `file:///d/p.yaml` → `file:///d`, `p.yaml`. */
function splitTarget(target: string): { storeUrl: string; key: string } {
  if (target.startsWith('file:')) {
    // Only file:///absolute: the URL parser would read file:relative/x as /relative/x.
    if (!target.startsWith('file:///')) throw new CliFailure(2, `--to ${target}: expected an absolute file:///dir/name`);
    const path = fileURLToPath(target);
    return { storeUrl: pathToFileURL(dirname(path)).href, key: basename(path) };
  }
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(target);
  if (!match) throw new CliFailure(2, `--to ${target}: expected s3://bucket/key or file:///dir/name`);
  return { storeUrl: `s3://${match[1]}`, key: match[2]! };
}

interface PublishOptions {
  to: string;
  sig?: string;
  trusted?: string[];
  config?: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
}

async function publish(file: string, options: PublishOptions, io: CliIo): Promise<void> {
  const document = await readInput(file, 'policy');
  const sigPath = options.sig ?? `${file}.sig`;
  const signature = await readInput(sigPath, 'signature');
  const keys = await trustedKeys(options);
  const signed = verifySignature(document, signature, keys);
  if (!signed.ok) throw new CliFailure(1, `not published: ${file}: ${signed.reason}`);
  const doc = parseOrFail(document, file);
  const { storeUrl, key } = splitTarget(options.to);
  let settings: Record<string, unknown> = {};
  let baseDir = process.cwd();
  if (options.config) {
    settings = { ...((await loadConfig(options.config)).config.policy?.store ?? {}) };
    baseDir = dirname(resolve(options.config));
  }
  if (options.endpoint) settings.endpoint = options.endpoint;
  if (options.region) settings.region = options.region;
  if (options.forcePathStyle) settings.force_path_style = true;
  const storeConfig = policyStoreConfig(storeUrl, settings, { baseDir, env: process.env });
  if (!storeConfig.ok) throw new CliFailure(2, `store settings: ${storeConfig.problems.join('; ')}`);
  const store = await openStore(storeConfig.store);
  try {
    const results = await publishPolicy(store, key, document, signature);
    for (const r of results) io.out(`${r.unchanged ? 'unchanged' : r.replaced ? 'replaced' : 'created'} ${store.description.replace(/\/+$/, '')}/${r.key}\n`);
    io.out(`published version ${doc.version} signed by ${signed.keyId}\n`);
  } catch (error) {
    throw new CliFailure(1, `publish to ${options.to} failed: ${(error as Error).message}`);
  } finally {
    await store.close();
  }
}

async function validate(file: string, options: { plant?: string; config?: string }, io: CliIo): Promise<void> {
  const bytes = await readInput(file, 'policy');
  const doc = parseOrFail(bytes, file);
  const loaded = options.config ? (await loadConfig(options.config)).config : null;
  const base: PolicyBase = loaded ? { tiering: loaded.tiering, hot: loaded.hot } : DEFAULT_BASE;
  const floors = loaded?.policy?.floors ?? DEFAULT_FLOORS;
  let plants: string[];
  if (options.plant) plants = [options.plant];
  else if (loaded) plants = [loaded.plant];
  else {
    const named = [...new Set([...doc.plants.filter((p) => p !== '*'), ...Object.keys(doc.overrides)])];
    plants = doc.plants.includes('*') ? ['*', ...named] : named;
  }
  let refused = 0;
  for (const plant of plants) {
    const datasets = loaded
      ? [...loaded.datasets.map((d) => d.name), 'blobs']
      : ['*', ...new Set([...Object.keys(doc.defaults.datasets), ...Object.keys(doc.overrides[plant]?.datasets ?? {})].filter((d) => d !== '*'))];
    const result = checkPolicyDocument({
      document: bytes,
      plant,
      datasets,
      base,
      lastGoodVersion: null,
      floors,
      diskBudgetBytes: loaded?.tiering.disk_budget.max_bytes ?? null,
      nowMs: Date.now(),
    });
    io.out(`plant ${plant === '*' ? '* (any plant without an override)' : plant}: `);
    if (!result.ok) {
      refused++;
      io.out(`REFUSED ${result.code}: ${result.reason}\n\n`);
      continue;
    }
    io.out(`ok, version ${doc.version}, expires ${doc.expires_at}\n${renderEffective(result.effective)}\n`);
  }
  if (refused > 0) throw new CliFailure(1, `${file}: refused for ${refused} of ${plants.length} plant(s)`);
}

export function registerPolicyCommand(program: Command, io: CliIo = processIo): void {
  const run =
    <A extends unknown[]>(action: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await action(...args);
      } catch (error) {
        io.err(`${error instanceof CliFailure ? '' : 'error: '}${(error as Error).message}\n`);
        io.exit(error instanceof CliFailure ? error.exitCode : 1);
      }
    };
  const policy = program.command('policy').description('central tiering policies: keys, signatures, validation, publishing');

  policy
    .command('keygen')
    .description('make an Ed25519 key pair for signing policies')
    .requiredOption('--out <dir>', 'directory for ID.pem (private), ID.pub.pem and ID.pub')
    .requiredOption('--key-id <id>', 'the key id agents will know it by')
    .action(
      run(async (options: { out: string; keyId: string }) => {
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(options.keyId)) throw new CliFailure(2, `--key-id ${options.keyId}: expected letters, digits, . _ or -`);
        const privatePath = join(options.out, `${options.keyId}.pem`);
        if (existsSync(privatePath)) throw new CliFailure(2, `${privatePath} exists; not overwritten (pick another key id)`);
        const pair = generateSigningKeyPair();
        await mkdir(options.out, { recursive: true, mode: 0o700 });
        await writeFile(privatePath, pair.privateKeyPem, { mode: 0o600, flag: 'wx' });
        await writeFile(join(options.out, `${options.keyId}.pub.pem`), pair.publicKeyPem, { flag: 'wx' });
        await writeFile(join(options.out, `${options.keyId}.pub`), `${pair.publicKeyRaw}\n`, { flag: 'wx' });
        io.out(`private key ${privatePath} (mode 0600: keep it off the plants)\n`);
        io.out(`for each agent's config:\npolicy:\n  trusted_keys:\n    - id: ${options.keyId}\n      public_key: ${pair.publicKeyRaw}\n`);
      }),
    );

  policy
    .command('sign <file>')
    .description('write FILE.sig, a detached signature over the exact bytes of FILE')
    .requiredOption('--key <private.pem>', 'the private key (PEM)')
    .requiredOption('--key-id <id>', 'its key id')
    .option('--out <path>', 'where the signature goes (default FILE.sig)')
    .action(
      run(async (file: string, options: { key: string; keyId: string; out?: string }) => {
        const document = await readInput(file, 'policy');
        parseOrFail(document, file);
        const pem = (await readInput(options.key, 'private key')).toString('utf8');
        let signature;
        try {
          signature = signDocument(document, pem, options.keyId);
        } catch (error) {
          throw new CliFailure(2, `private key ${options.key}: ${(error as Error).message}`);
        }
        const out = options.out ?? `${file}.sig`;
        await writeFile(out, encodeSignatureFile(signature));
        io.out(`signed ${file} with key ${options.keyId}: ${out}\n`);
      }),
    );

  policy
    .command('verify <file>')
    .description('check FILE against its signature and the trusted keys')
    .option('--sig <file>', 'the signature (default FILE.sig)')
    .option('--trusted <keyfiles...>', 'trusted public key files: ID.pub, ID.pub.pem or ID=PATH')
    .option('-c, --config <file>', 'take the trusted keys from an agent config (policy.trusted_keys)')
    .action(
      run(async (file: string, options: { sig?: string; trusted?: string[]; config?: string }) => {
        const document = await readInput(file, 'policy');
        const signature = await readInput(options.sig ?? `${file}.sig`, 'signature');
        const result = verifySignature(document, signature, await trustedKeys(options));
        if (!result.ok) throw new CliFailure(1, `${file}: ${result.reason}`);
        io.out(`${file}: good signature by key ${result.keyId}\n`);
      }),
    );

  policy
    .command('validate <file>')
    .description('schema and safety checks; prints the effective policy per dataset')
    .option('--plant <plant>', 'check for this plant (default: the config’s plant, or every plant the document names)')
    .option('-c, --config <file>', "an agent config: its plant, datasets, tiering settings, floors and disk budget")
    .action(run((file: string, options: { plant?: string; config?: string }) => validate(file, options, io)));

  policy
    .command('diff <old> <new>')
    .description('what changes between two policies, per plant and dataset')
    .action(
      run(async (oldPath: string, newPath: string) => {
        const older = parseOrFail(await readInput(oldPath, 'policy'), oldPath);
        const newer = parseOrFail(await readInput(newPath, 'policy'), newPath);
        const changes = diffPolicies(older, newer);
        if (changes.length === 0) {
          io.out('no changes\n');
          return;
        }
        io.out(formatTable(['plant', 'dataset', 'field', 'old', 'new'], changes.map((c) => [c.plant, c.dataset, c.field, c.old, c.new])));
      }),
    );

  policy
    .command('publish <file>')
    .description('verify, then upload FILE.sig and FILE (in that order) to where agents poll')
    .requiredOption('--to <url>', 's3://bucket/key or file:///dir/name')
    .option('--sig <file>', 'the signature (default FILE.sig)')
    .option('--trusted <keyfiles...>', 'trusted public key files: ID.pub, ID.pub.pem or ID=PATH')
    .option('-c, --config <file>', 'an agent config: trusted keys and S3 settings (policy.trusted_keys, policy.store)')
    .option('--endpoint <url>', 'S3 endpoint (an S3-compatible server)')
    .option('--region <region>', 'S3 region')
    .option('--force-path-style', 'S3 path-style addressing')
    .action(run((file: string, options: PublishOptions) => publish(file, options, io)));

  policy
    .command('schema')
    .description("print the policy document's JSON Schema")
    .action(
      run(async () => {
        io.out(`${JSON.stringify(z.toJSONSchema(policyDocumentSchema, { io: 'input' }), null, 2)}\n`);
      }),
    );
}
