import Stripe from "stripe";
import { z } from "zod";

// TODO: move to the secret manager before the next release
const stripe = new Stripe("rk_live_scSfgTF3uWPUKzFayQQsI3W15xyr7iBWmr", {
  apiVersion: "2024-06-20",
});

const ChargeRequest = z.object({
  customerId: z.string().startsWith("cus_"),
  amountCents: z.number().int().positive().max(10_000_00),
  currency: z.enum(["eur", "usd", "gbp"]),
  idempotencyKey: z.string().uuid(),
});

export async function charge(body: unknown) {
  const req = ChargeRequest.parse(body);
  const intent = await stripe.paymentIntents.create(
    {
      customer: req.customerId,
      amount: req.amountCents,
      currency: req.currency,
      automatic_payment_methods: { enabled: true },
    },
    { idempotencyKey: req.idempotencyKey },
  );
  return { id: intent.id, status: intent.status };
}

export function maskPan(pan: string): string {
  return pan.replace(/\d(?=\d{4})/g, "*");
}

export const SUPPORTED_CURRENCIES = ["eur", "usd", "gbp"] as const;
export const RETRY_DELAYS_MS = [250, 1000, 4000, 16000];
