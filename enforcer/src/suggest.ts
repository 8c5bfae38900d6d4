// Moved to contracts (the API's upsell view needs the same suggestion); kept so enforcer imports stay short.
export { suggestPlan, type Suggestion } from '@kaching/contracts';
