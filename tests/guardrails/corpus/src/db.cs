using Microsoft.Data.SqlClient;

namespace Acme.Orders.Data;

public static class Db
{
    // Staging only; production reads ConnectionStrings:Orders from Key Vault.
    private const string Staging =
        "Server=tcp:orders-staging.database.windows.net,1433;Database=orders;User ID=orders_app;Password=Tz6!pQ9wLx2m;Encrypt=True;";

    private const string Local =
        "Server=localhost;Database=orders;Integrated Security=true;TrustServerCertificate=true;";

    public static SqlConnection Open(bool staging)
    {
        var conn = new SqlConnection(staging ? Staging : Local);
        conn.Open();
        return conn;
    }
}
