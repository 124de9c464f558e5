/**
 * The `lakeside` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad input
 * (invalid config, unknown command).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerBackfillCommand } from './backfill-command.ts';
import { registerClientCommands } from './client-commands.ts';
import { registerConfigCommands } from './config-command.ts';
import { registerDemoCommand } from './demo-command.ts';
import { registerFleetCommand } from './fleet-command.ts';
import { registerOpsCommands } from './ops-commands.ts';
import { registerPolicyCommand } from './policy-command.ts';
import { registerReconcileCommand } from './reconcile-command.ts';
import { registerRunCommand } from './run-command.ts';
import { registerTiersCommand } from './tiers-command.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('lakeside')
  .description('Plant-side lakehouse agent: durable ingest, on-site hot tier, tiering and Iceberg commits.')
  .version(pkg.version)
  .showHelpAfterError();

registerRunCommand(program);
registerConfigCommands(program);
registerDemoCommand(program);
registerClientCommands(program);
registerOpsCommands(program);
registerTiersCommand(program);
registerBackfillCommand(program);
registerReconcileCommand(program);
registerPolicyCommand(program);
registerFleetCommand(program);

program.exitOverride((error) => {
  process.exit(error.exitCode === 0 ? 0 : 2);
});

await program.parseAsync(process.argv);
