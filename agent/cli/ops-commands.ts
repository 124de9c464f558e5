/**
 * `lakeside doctor` (is this machine ready for this config? agent/ops/doctor.ts) and
 * `lakeside verify [--repair]` (is the local state consistent? agent/ops/verify.ts).
 * Exit codes: 0 all good (doctor: warnings allowed; verify: nothing left to fix),
 * 1 a check failed or something is left unfixed, 2 bad input.
 */
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/loader.ts';
import { runDoctor, type CheckStatus } from '../ops/doctor.ts';
import { verifyState, type VerifyReport } from '../ops/verify.ts';
import { styleFor, type Style } from './style.ts';

function mark(status: CheckStatus, style: Style): string {
  return status === 'ok' ? style.ok('ok  ') : status === 'warn' ? style.warn('warn') : style.fail('FAIL');
}

export function formatVerify(report: VerifyReport, repair: boolean, style: Style): { text: string; unresolved: number } {
  const lines = [`${style.bold('lakeside verify')} ${report.stateDir}: ${report.checked.hotFiles} hot files, ${report.checked.blobs} blobs, ${report.checked.tierFiles} tier-map files registered`];
  if (!report.daemonStopped) {
    lines.push(style.warn(repair ? 'the daemon is running (it holds the state lock): stop it before --repair; nothing was changed' : 'the daemon is running: temp files may belong to writes in progress'));
  }
  let unresolved = 0;
  for (const finding of report.findings) {
    const where = finding.path ? `${finding.path}: ` : '';
    if (finding.repaired) lines.push(`  ${style.ok('fixed')}  ${finding.kind} ${where}${finding.detail}; ${finding.repaired}`);
    else if (finding.info) {
      lines.push(`  ${style.dim('info')}   ${finding.kind} ${where}${finding.detail}`);
      if (finding.cannotRepair) lines.push(`         ${style.dim(`-> ${finding.cannotRepair}`)}`);
      else if (!repair) lines.push(`         ${style.dim('-> harmless; lakeside verify --repair deletes it')}`);
    } else {
      unresolved++;
      const severity = finding.cannotRepair ? style.fail('CANNOT FIX') : style.warn('found');
      lines.push(`  ${severity} ${finding.kind} ${where}${finding.detail}`);
      if (finding.cannotRepair) lines.push(`         ${style.dim(`-> ${finding.cannotRepair}`)}`);
      else if (!repair) lines.push(`         ${style.dim('-> lakeside verify --repair fixes this')}`);
    }
  }
  if (report.findings.length === 0) lines.push(`  ${style.ok('ok')} the local state is consistent`);
  return { text: `${lines.join('\n')}\n`, unresolved };
}

export function registerOpsCommands(program: Command): void {
  program
    .command('doctor')
    .description('check this machine for the config: config validity, state directory permissions and free disk, clock, reachability of MQTT brokers, S3/catalog and webhook endpoints')
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .option('--timeout-ms <ms>', 'per network check', (v) => Number(v), 5000)
    .action(async (options: { config: string; timeoutMs: number }) => {
      const style = styleFor(process.stdout);
      const results = await runDoctor(options.config, { timeoutMs: options.timeoutMs });
      for (const r of results) process.stdout.write(`${mark(r.status, style)} ${r.check.padEnd(16)} ${r.detail}\n`);
      const failed = results.filter((r) => r.status === 'fail').length;
      const warned = results.filter((r) => r.status === 'warn').length;
      process.stdout.write(failed ? style.fail(`${failed} check(s) failed\n`) : style.ok(`all checks passed${warned ? ` (${warned} warning(s))` : ''}\n`));
      if (failed) process.exitCode = 1;
    });

  program
    .command('verify')
    .description('check the local state: hot-tier register and tier map against the files on disk, SQLite integrity, blobs, leftover temp files')
    .option('-c, --config <file>', 'the YAML config file (for state_dir)')
    .option('--state-dir <dir>', 'the state directory (instead of --config)')
    .option('--repair', 'fix what can be fixed safely (the daemon must be stopped)')
    .option('--json', 'print the report as JSON')
    .action(async (options: { config?: string; stateDir?: string; repair?: boolean; json?: boolean }) => {
      const stateDir = options.stateDir ?? (options.config ? (await loadConfigFile(options.config, { resolveSecrets: false })).config.state_dir : undefined);
      if (!stateDir) {
        process.stderr.write('lakeside verify: give --config <file> or --state-dir <dir>\n');
        process.exitCode = 2;
        return;
      }
      const repair = options.repair === true;
      const report = await verifyState(stateDir, { repair });
      const { text, unresolved } = formatVerify(report, repair, styleFor(process.stdout));
      process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : text);
      if (unresolved > 0 || (repair && !report.daemonStopped)) process.exitCode = 1;
    });
}
