// Test fixtures: every value is generated, none belongs to a person.
export const users = [
  { id: "u_001", email: "alice@example.com", phone: "+1 555 0100", role: "admin" },
  { id: "u_002", email: "bob@example.org", phone: "+1 555 0101", role: "viewer" },
];

export const orderIds = [100482931, 100482977, 100483002];
export const uuid = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
export const sha = "3f9a2c1e8b7d6f5a4e3d2c1b0a9f8e7d6c5b4a39";
export const version = "4.12.1";
export const isoDate = "2026-12-04T10:15:05.114Z";
export const amountsCents = [129900, 4900, 1999, 100];
