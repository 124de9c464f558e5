#!/usr/bin/env node
// Entry point of the `lakeside` command. The sources are TypeScript that Node ≥ 22.18
// runs directly (type stripping); this shim only checks the runtime first.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`lakeside needs Node.js 22.18 or newer (this is ${process.versions.node})\n`);
  process.exit(1);
}
await import('../agent/cli/main.ts');
