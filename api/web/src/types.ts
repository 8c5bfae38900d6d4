/** Shapes of the API answers the dashboard reads (see /openapi.json). Decimals arrive as strings. */

export interface Page<T> {
  items: T[];
}

export interface Session {
  csrf_token: string;
  user?: { login?: string; role?: string };
}

export interface Deployment {
  deployment_id: string;
  name: string;
  enforcement?: 'soft' | 'hard';
}

export interface Card {
  key: string;
  label: string;
  unit: string;
  used: string;
  cap: string | null;
  /** Formatted by the API with contracts' formatting (one place for people's numbers). */
  used_text?: string;
  cap_text?: string | null;
  pct: number | null;
  period: string;
  source: string | null;
  series: { value: string }[];
}

export interface Utilisation {
  cards: Card[];
}

export interface Bottleneck {
  code: string;
  action: string;
  times: number;
  last_message?: string;
  last_at: string;
}

export interface Decision {
  state: string;
  action: string;
  scope: string;
  message: string;
}

export interface Suggestion {
  suggestion_id: string;
  status: string;
  target_plan: string | null;
  rationale: string;
  diffs?: Record<string, unknown>;
}

export interface Alert {
  alert_id: string;
  severity: string;
  code: string;
  message: string;
  created_at: string;
  acknowledged: boolean;
}

export interface AgentTypeRow {
  agent_type: string;
  agents: string;
  jobs: string;
  jobs_failed: string;
  model_tokens_in: string;
  model_tokens_out: string;
  context_bytes_written: string;
  cpu_seconds: string;
}

export interface NodeRow {
  hostname: string;
  node_id: string;
  hw_class?: string | null;
  agent_types?: string[];
  jobs: string;
  model_tokens: string;
  context_bytes_written: string;
  last_seen_at: string;
}

export interface AgentTypeDetail {
  agent_type: string;
  series: { jobs: string; model_tokens_in: string; model_tokens_out: string }[];
  agents: { agent_id: string; version?: string | null; hostname?: string | null; node_id?: string | null; last_seen_at: string }[];
}
