// The redaction rules live in contracts: audit (here and in the archive) re-applies them to an agent's original.
export { REDACTED, redactUcxl, type RedactionResult } from '@kaching/contracts';
