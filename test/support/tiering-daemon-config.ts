// The daemon config the tiering integration tests share: a camera drop folder feeding a
// `frames` dataset (line, file, image blob), fast seals and 1-minute compaction; each test
// appends its own `tiering:` settings (indented two spaces) to the returned text.
export function framesTieringConfig(o: { plant: string; stateDir: string; dropDir: string; apiPort: number; agentId?: string; readToken?: string }): string {
  const api = o.readToken
    ? `api:\n  listen_port: ${o.apiPort}\n  tokens:\n    - { name: scraper, role: read, token: '${o.readToken}' }\n`
    : `api: { listen_port: ${o.apiPort} }\n`;
  return `plant: ${o.plant}
agent_id: ${o.agentId ?? 'agent_a'}
state_dir: ${o.stateDir}
log_level: info
${api}hot:
  seal_interval_ms: 200
  compaction_window_minutes: 1
  compaction_grace_seconds: 1
  compaction_interval_ms: 300
datasets:
  - name: frames
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: file, type: string, nullable: false }
      - { name: image, type: blob, nullable: false }
    partition_by: [line]
sources:
  folders:
    - name: cams
      path: ${o.dropDir}
      dataset: frames
      path_pattern: "{line}/{file}"
      stable_ms: 100
      fields:
        ts: { file_mtime: true }
        line: { path_field: line }
        file: { path_field: file }
        image: { payload: true }
tiering:
`;
}

/** The warm store also holds the file-system catalog's table metadata (catalog.root_prefix, `iceberg/`): data and blob keys are the rest. */
export function withoutCatalogKeys(keys: string[]): string[] {
  return keys.filter((key) => !key.startsWith('iceberg/'));
}
