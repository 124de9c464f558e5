/**
 * Upload windows: per dataset (and for blobs), cron expressions naming the minutes in
 * which uploads may start, e.g. `"* 22-23,0-5 * * *"` for frames only at night. No
 * expressions: always open. An upload that started inside its window runs to its end.
 * Expressions are evaluated in `timezone` (IANA name, default UTC).
 */
import { CronExpressionParser, type CronExpression } from 'cron-parser';
import type { TieringConfig, UploadPolicy } from '../config/tiering-schema.ts';

export class UploadWindows {
  private readonly datasets = new Map<string, CronExpression[]>();
  private readonly blobs: CronExpression[];
  private readonly timezone: string;

  constructor(config: Pick<TieringConfig, 'datasets' | 'blobs'>, timezone = 'UTC') {
    this.timezone = timezone;
    for (const [name, policy] of Object.entries(config.datasets)) this.datasets.set(name, this.compile(policy));
    this.blobs = this.compile(config.blobs);
  }

  private compile(policy: UploadPolicy): CronExpression[] {
    return policy.upload_windows.map((expression) => CronExpressionParser.parse(expression, { tz: this.timezone }));
  }

  private static open(expressions: CronExpression[], at: Date): boolean {
    if (expressions.length === 0) return true;
    const minute = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
    return expressions.some((e) => e.includesDate(minute));
  }

  /** Datasets whose windows are closed at `at`, and whether blobs' are. */
  closedAt(at: Date): { datasets: string[]; blobs: boolean } {
    const datasets: string[] = [];
    for (const [name, expressions] of this.datasets) if (!UploadWindows.open(expressions, at)) datasets.push(name);
    return { datasets, blobs: !UploadWindows.open(this.blobs, at) };
  }
}
