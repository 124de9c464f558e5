/**
 * Central policies on the agent, as one component: fetch the signed policy on a
 * schedule (and on an MQTT nudge), check it (check.ts), apply it live to tiering, keep
 * it on disk as the last good one, say what happened (logs, state, metric).
 *
 * Invariants:
 * - At start, before the first fetch, the last good policy on disk is checked again
 *   and applied, so a restart while the centre is unreachable keeps it. It is checked
 *   as of the time it was applied (signature, scope and safety as then): a policy
 *   that expired while the centre was away stays in force until a newer one arrives
 *   (a warning says so), rather than the plant silently falling back to its file.
 * - A fetched policy applies only if the validator accepts it (version above the one
 *   in force, no rollback) and tiering can build settings from it; otherwise nothing
 *   changes, and the refusal (version, code, reason) is logged once per document and
 *   kept in state.json until a policy applies.
 * - Order of an apply: tiering swaps its settings (throws → refused, nothing changed),
 *   then the pair is saved as the last good, then state.json. A crash between the swap
 *   and the save re-fetches the same policy after the restart.
 * - Fetch failures back off with jitter (up to the poll interval); the regular poll is
 *   jittered by ±10 % so a fleet does not poll in step. One fetch at a time; a nudge
 *   during a fetch runs one more right after.
 * - Every setting applies live: tiering's through Tiering.applyPolicy, a dataset's
 *   compaction_window_minutes and target_file_bytes through the hot tier
 *   (`hot`, Sealer.applyDatasetSettings), checked before either applies, so a refusal
 *   changes neither. A dataset the policy no longer sets falls back to the config
 *   file's values (resolve.ts). The applied state shows the hot settings in force.
 * - Log codes: POLICY_APPLIED, POLICY_REFUSED (with code and reason), POLICY_FETCH_FAILED.
 */
import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { onceStop, type Component } from '../../agent/lifecycle.ts';
import { backoffDelay } from '../../agent/retry.ts';
import type { TieringLogger } from '../../tiering/uploader.ts';
import type { AgentPolicyConfig, EffectivePolicy } from '../../config/policy-schema.ts';
import { hotSettingsProblem, type DatasetHotSettings } from '../../agent/hot/dataset-settings.ts';
import type { PolicyChecker, PolicyCheckInput, PolicyCheckResult } from './check.ts';
import { PolicySource, subscribeNudge, type FetchOutcome } from './fetch.ts';
import { LastGoodStore, type PolicyState } from './last-good.ts';

/** The structured logger the tiering loops use (pino's shape). */
export type PolicyLogger = TieringLogger;

export interface PolicyAgentOptions {
  config: AgentPolicyConfig;
  plant: string;
  stateDir: string;
  datasets: string[];
  /** The config file's tiering and hot sections (what the policy resolves over; the disk budget). */
  base: PolicyCheckInput['base'];
  check: PolicyChecker;
  /** Applies a checked policy live (Tiering.applyPolicy); throws, changing nothing, if it cannot. */
  apply: (effective: EffectivePolicy) => void;
  /** The hot tier (Sealer): takes each dataset's compaction window and target file size, returns what is in force. */
  hot: HotSettingsTarget;
  logger: PolicyLogger;
  /** Called with the version in force after every apply (the lakeside_policy_version metric). */
  onApplied?: (version: number) => void;
  /** Hot bytes per hour per dataset (the validator's disk-budget check). */
  hotBytesPerHour?: () => Record<string, number>;
  /** Tests: a source in place of the configured one, a clock, no timers. */
  source?: { description: string; fetch(): Promise<FetchOutcome>; close(): void };
  nowMs?: () => number;
}

export interface HotSettingsTarget {
  applyDatasetSettings(settings: Record<string, DatasetHotSettings>): Record<string, DatasetHotSettings>;
}

/** A policy's hot settings per dataset (every dataset it resolved; the config's values where it sets none). */
export function hotSettingsOf(effective: EffectivePolicy): Record<string, DatasetHotSettings> {
  return Object.fromEntries(
    Object.entries(effective.datasets).map(([name, d]) => [name, { compactionWindowMinutes: d.compaction_window_minutes, targetFileBytes: d.target_file_bytes }]),
  );
}

/** What /v1/status and the status report show. */
export interface PolicyStatus {
  source: string;
  applied: PolicyState['applied'];
  refused: PolicyState['refused'];
  last_fetch: PolicyState['last_fetch'];
}

type AppliedHot = NonNullable<NonNullable<PolicyState['applied']>['hot']>;

function appliedHot(settings: Record<string, DatasetHotSettings>): AppliedHot {
  return Object.fromEntries(Object.entries(settings).map(([name, s]) => [name, { compaction_window_minutes: s.compactionWindowMinutes, target_file_bytes: s.targetFileBytes }]));
}

export class PolicyAgent implements Component {
  readonly name = 'policy';
  private readonly options: PolicyAgentOptions;
  private readonly store: LastGoodStore;
  private readonly source: NonNullable<PolicyAgentOptions['source']>;
  private readonly nowMs: () => number;
  private state: PolicyState = { applied: null, refused: null, last_fetch: null };
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private stopped = false;
  private nudge: MqttClient | null = null;
  /** The bytes of the pair in force: fetching them again is not a new policy. */
  private inForce: { document: Buffer; signature: Buffer } | null = null;

  constructor(options: PolicyAgentOptions) {
    this.options = options;
    this.store = new LastGoodStore(options.stateDir);
    this.source = options.source ?? new PolicySource(options.config);
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** Applies the last good policy from disk, then starts polling (first fetch at once) and the nudge. */
  async start(): Promise<void> {
    this.state = await this.store.readState();
    await this.applyLastGood();
    this.stopped = false;
    this.schedule(0);
    const nudge = this.options.config.mqtt_nudge;
    if (nudge) {
      this.nudge = await subscribeNudge(nudge, () => this.fetchNow(), (error) =>
        this.options.logger.warn({ code: 'POLICY_NUDGE_FAILED', err: error.message }, 'policy nudge (MQTT) connection error'),
      );
    }
  }

  readonly stop = onceStop(async () => {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.nudge?.endAsync(true).catch(() => {});
    this.source.close();
  });

  get status(): PolicyStatus {
    return { source: this.source.description, applied: this.state.applied, refused: this.state.refused, last_fetch: this.state.last_fetch };
  }

  /** Asks for a fetch now (the MQTT nudge); one running finishes first, then one more runs. */
  fetchNow(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /** One fetch-check-apply round (the poll loop's step; tests call it directly). */
  async pollOnce(): Promise<void> {
    const at = new Date(this.nowMs()).toISOString();
    let outcome: FetchOutcome;
    try {
      outcome = await this.source.fetch();
    } catch (error) {
      this.failures++;
      const message = (error as Error).message;
      this.state.last_fetch = { at, ok: false, changed: false, error: message };
      this.options.logger.warn({ code: 'POLICY_FETCH_FAILED', source: this.source.description, attempts: this.failures, err: message }, 'policy fetch failed; the policy in force stays');
      await this.saveState();
      return;
    }
    this.failures = 0;
    this.state.last_fetch = { at, ok: true, changed: outcome.changed, error: null };
    if (outcome.changed) await this.consider(outcome.document, outcome.signature, this.nowMs(), 'fetched');
    await this.saveState();
  }

  private async applyLastGood(): Promise<void> {
    const applied = this.state.applied;
    const asOf = applied ? Math.min(this.nowMs(), Date.parse(applied.applied_at) || this.nowMs()) : this.nowMs();
    let problem: PolicyCheckResult | null = null;
    for (const pair of await this.store.candidates()) {
      const result = await this.check(pair.document, pair.signature, asOf, null);
      if (!result.ok) {
        problem = result;
        continue;
      }
      const outcome = this.tryApply(result.effective);
      if ('error' in outcome) {
        problem = { ok: false, version: result.effective.version, code: 'POLICY_APPLY_FAILED', reason: outcome.error };
        continue;
      }
      this.inForce = { document: Buffer.from(pair.document), signature: Buffer.from(pair.signature) };
      if (pair.name !== 'current.yaml + current.yaml.sig') await this.store.save(pair.document, pair.signature);
      await this.store.clearPending();
      this.state.applied = { version: result.effective.version, applied_at: applied?.applied_at ?? new Date(asOf).toISOString(), expires_at: result.effective.expiresAt, warnings: result.effective.warnings, hot: outcome.hot };
      const expired = Date.parse(result.effective.expiresAt) <= this.nowMs();
      this.options.logger.info(
        { code: 'POLICY_APPLIED', version: result.effective.version, from: 'last good on disk', expires_at: result.effective.expiresAt, ...(expired ? { expired: true } : {}), warnings: result.effective.warnings },
        expired ? 'last good policy applied (it has expired: it stays in force until the centre sends a newer one)' : 'last good policy applied',
      );
      this.options.onApplied?.(result.effective.version);
      return;
    }
    if (problem && !problem.ok) {
      this.state.applied = null;
      this.options.logger.error(
        { code: 'POLICY_REFUSED', from: 'last good on disk', version: problem.version, reason_code: problem.code, reason: problem.reason },
        'the policy on disk does not verify: running on the config file until a policy is fetched',
      );
    }
  }

  private async check(document: Uint8Array, signature: Uint8Array, nowMs: number, lastGoodVersion: number | null): Promise<PolicyCheckResult> {
    const o = this.options;
    try {
      return await o.check({
        document,
        signature,
        trustedKeys: o.config.trusted_keys,
        plant: o.plant,
        datasets: o.datasets,
        base: o.base,
        lastGoodVersion,
        lastGoodSha256: lastGoodVersion !== null && this.inForce ? createHash('sha256').update(this.inForce.document).digest('hex') : null,
        floors: o.config.floors,
        diskBudgetBytes: await this.diskBudgetBytes(),
        ...(o.hotBytesPerHour ? { estimatedHotBytesPerHour: o.hotBytesPerHour() } : {}),
        nowMs,
      });
    } catch (error) {
      return { ok: false, version: null, code: 'POLICY_CHECK_FAILED', reason: `the validator failed: ${(error as Error).message}` };
    }
  }

  /** The disk budget the hot window must fit: `disk_budget.max_bytes`, else the size of state_dir's filesystem. */
  private async diskBudgetBytes(): Promise<number | null> {
    const max = this.options.base.tiering.disk_budget.max_bytes;
    if (max !== undefined) return max;
    try {
      const fs = await statfs(this.options.stateDir);
      return fs.blocks * fs.bsize;
    } catch {
      return null;
    }
  }

  /**
   * Applies tiering, then the hot tier's settings; the hot settings are checked first,
   * so a refusal changes nothing. Returns the hot settings in force (for the state).
   */
  private tryApply(effective: EffectivePolicy): { error: string } | { hot: AppliedHot } {
    try {
      const hot = hotSettingsOf(effective);
      const problem = hotSettingsProblem(hot);
      if (problem) throw new Error(problem);
      this.options.apply(effective);
      return { hot: appliedHot(this.options.hot.applyDatasetSettings(hot)) };
    } catch (error) {
      return { error: (error as Error).message };
    }
  }

  private async consider(document: Uint8Array, signature: Uint8Array, nowMs: number, from: string): Promise<void> {
    const { logger } = this.options;
    const inForce = this.state.applied?.version ?? null;
    if (this.inForce?.document.equals(document) && this.inForce.signature.equals(signature)) return;
    const result = await this.check(document, signature, nowMs, inForce);
    let refusal: { version: number | null; code: string; reason: string } | null = result.ok ? null : result;
    if (result.ok && result.effective.version === inForce) return; // the same policy again (re-signed): nothing to do
    let hot: AppliedHot = {};
    if (result.ok) {
      const outcome = this.tryApply(result.effective);
      if ('error' in outcome) refusal = { version: result.effective.version, code: 'POLICY_APPLY_FAILED', reason: outcome.error };
      else hot = outcome.hot;
    }
    if (refusal) {
      const same = this.state.refused?.version === refusal.version && this.state.refused?.code === refusal.code;
      this.state.refused = { ...refusal, at: new Date(nowMs).toISOString() };
      if (!same) logger.warn({ code: 'POLICY_REFUSED', from, version: refusal.version, reason_code: refusal.code, reason: refusal.reason, in_force: inForce }, 'policy refused; the one in force stays');
      return;
    }
    const effective = (result as Extract<PolicyCheckResult, { ok: true }>).effective;
    this.state.applied = { version: effective.version, applied_at: new Date(nowMs).toISOString(), expires_at: effective.expiresAt, warnings: effective.warnings, hot };
    this.state.refused = null;
    this.inForce = { document: Buffer.from(document), signature: Buffer.from(signature) };
    this.options.onApplied?.(effective.version);
    logger.info({ code: 'POLICY_APPLIED', from, version: effective.version, previous: inForce, expires_at: effective.expiresAt, warnings: effective.warnings }, 'policy applied');
    try {
      await this.store.save(document, signature);
    } catch (error) {
      logger.error({ code: 'POLICY_SAVE_FAILED', version: effective.version, err: (error as Error).message }, 'policy applied but not saved as the last good one (a restart falls back to the previous one)');
    }
  }

  private async saveState(): Promise<void> {
    try {
      await this.store.writeState(this.state);
    } catch (error) {
      this.options.logger.warn({ code: 'POLICY_SAVE_FAILED', err: (error as Error).message }, 'policy state not saved');
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.pollOnce()
        .catch((error: Error) => this.options.logger.error({ code: 'POLICY_FETCH_FAILED', err: error.message }, 'policy round failed'))
        .finally(() => {
          this.running = null;
          if (this.again) {
            this.again = false;
            this.schedule(0);
          } else this.schedule(this.nextDelayMs());
        });
    }, delayMs);
    this.timer.unref();
  }

  private nextDelayMs(): number {
    const intervalMs = this.options.config.poll_interval_seconds * 1000;
    if (this.failures > 0) return Math.min(intervalMs, backoffDelay(this.failures - 1, { initialMs: 1000, maxMs: intervalMs }));
    return Math.round(intervalMs * (0.9 + Math.random() * 0.2));
  }
}
