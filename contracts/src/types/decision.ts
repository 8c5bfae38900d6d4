export type DecisionCode =
  | 'QUOTA_NEARING'
  | 'QUOTA_EXCEEDED'
  | 'BUDGET_EXCEEDED'
  | 'NODES_LIMIT_EXCEEDED'
  | 'SEATS_LIMIT_EXCEEDED'
  | 'LICENSE_EXPIRED'
  | 'PRICE_UNKNOWN';

export type DecisionAction = 'warn' | 'throttle' | 'block' | 'fallback_model';
export type PeriodKind = 'daily' | 'weekly' | 'monthly' | 'rolling_30d';
export type EnforcementMode = 'soft' | 'hard';

export interface PolicyDecision {
  schema: 'kaching.v1.policy_decision';
  /** Deterministic: derived from (deployment, code, scope, period window, threshold). */
  decision_id: string;
  deployment_id: string;
  org_id: string;
  code: DecisionCode;
  /** What the decision is about: a quota name, a budget scope, "license", "nodes", "seats", "model:<name>". */
  scope: string;
  /** `active` while it holds; `cleared` when the period rolled over or the limit was raised. */
  state: 'active' | 'cleared';
  action: DecisionAction;
  enforcement: EnforcementMode;
  severity: 'info' | 'warn' | 'error';
  metric?: string;
  period?: { kind: PeriodKind; window_start: string; window_end: string; timezone: string };
  threshold?: number;
  observed?: number;
  limit?: number;
  params?: { max_concurrency?: number; model?: string };
  message: string;
  issued_at: string;
}
