/**
 * Fits the hot window to the disk budget: if keeping every dataset's hot window would
 * need more than the budget's high watermark (sum over datasets of
 * hot_retention_hours × estimated bytes per hour), the hot windows of the datasets with
 * an estimate are shortened by one common factor until it fits, with a warning. Not a
 * refusal: the disk is what it is, and the evictor would shrink the window anyway
 * (committed files only) — the clamp makes that visible in the policy status.
 *
 * Invariant: only shortens `hot_retention_hours`, and only of datasets with an estimate;
 * never touches anything else, never lengthens.
 */
import type { EffectivePolicy } from '../../config/policy-schema.ts';

const MIN_HOURS = 0.01;

export function clampHotWindow(effective: EffectivePolicy, diskBudgetBytes: number | null, highWatermarkPercent: number, bytesPerHour: Record<string, number> | undefined): void {
  if (diskBudgetBytes === null || !bytesPerHour) return;
  const capacity = (diskBudgetBytes * highWatermarkPercent) / 100;
  const estimated = Object.entries(effective.datasets).filter(([dataset]) => (bytesPerHour[dataset] ?? 0) > 0);
  const needed = estimated.reduce((sum, [dataset, p]) => sum + p.hot_retention_hours * bytesPerHour[dataset]!, 0);
  if (needed <= capacity) return;
  const factor = capacity / needed;
  const changes: string[] = [];
  for (const [dataset, policy] of estimated) {
    const clamped = Math.max(MIN_HOURS, Math.floor(policy.hot_retention_hours * factor * 100) / 100);
    changes.push(`${dataset} ${policy.hot_retention_hours} h → ${clamped} h`);
    policy.hot_retention_hours = clamped;
  }
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  effective.warnings.push(`hot window clamped to fit the disk budget (needs ${gib(needed)}, ${highWatermarkPercent}% of ${gib(diskBudgetBytes)} is ${gib(capacity)}): ${changes.join(', ')}`);
}
