/**
 * Why a key was revoked. `compromise`: the key may be in other hands, so nothing it signed is trusted.
 * `superseded`: a planned rotation; reports made before the revocation stay acceptable.
 */
export type RevokeReason = 'compromise' | 'superseded';
export const REVOKE_REASONS: readonly RevokeReason[] = ['compromise', 'superseded'];
