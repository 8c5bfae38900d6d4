import type { FastifyInstance } from 'fastify';
import { callerOf, withOrg, type ApiContext } from '../context.js';
import { anyObject, ok, page, pageQuery, uuid } from '../schemas.js';
import * as billing from '../../routines/billing.js';

const deliveryId = { type: 'object', required: ['id'], additionalProperties: false, properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' } } } as const;

/** The billing outbox (records the projector forwards to BILLING_SERVICE_URL), its dead-letter list and the retry action. */
export function billingRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: billing.DeliveryQuery }>(
    '/v1/billing/deliveries',
    {
      config: { auth: 'read' },
      schema: {
        summary: 'Billing records forwarded to the billing service, newest first; status=dead lists the dead-letter queue', tags: ['billing'],
        querystring: {
          type: 'object', additionalProperties: false,
          properties: { status: { type: 'string', enum: ['pending', 'sent', 'dead'] }, deployment_id: uuid, ...pageQuery },
        },
        response: ok(page()),
      },
    },
    (req) => withOrg(ctx, req, (c) => billing.listDeliveries(c, req.query)),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/billing/deliveries/:id/retry',
    {
      config: { auth: 'admin' },
      schema: { summary: 'Queue a dead-lettered billing record again (same idempotency key, fresh attempts)', tags: ['billing'], params: deliveryId, response: ok(anyObject) },
    },
    (req) => withOrg(ctx, req, (c) => billing.retryDelivery(c, req.params.id)),
  );

  app.put<{ Body: { customer_id: string | null } }>(
    '/v1/billing/customer',
    {
      config: { auth: 'admin' },
      schema: {
        summary: "The billing system's customer id of the caller's organisation (Stripe: payload[stripe_customer_id]; CloudEvents: subject); null = the org id", tags: ['billing'],
        body: {
          type: 'object', required: ['customer_id'], additionalProperties: false,
          properties: { customer_id: { type: ['string', 'null'], minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_.:-]+$' } },
        },
        response: ok(anyObject),
      },
    },
    (req) => withOrg(ctx, req, (c) => billing.setBillingCustomer(c, callerOf(req).orgId, req.body.customer_id)),
  );
}
