/** `lakeside config check FILE`: validates a config and prints a summary, or one line per problem (exit 2). */
import type { Command } from 'commander';
import { checkConfigFile } from '../../config/check.ts';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('work with config files');
  config
    .command('check')
    .argument('<file>', 'the YAML config file')
    .description('validate a config file; secrets are resolved but never printed')
    .action(async (file: string) => {
      const result = await checkConfigFile(file);
      const out = result.ok ? process.stdout : process.stderr;
      for (const line of result.lines) out.write(`${line}\n`);
      process.exitCode = result.ok ? 0 : 2;
    });
}
