// MariaDB Connector/J over TLS, verifying the server's certificate against a CA file:
//
//     java -cp mariadb-java-client.jar ConnectorJTls.java HOST PORT USER PASSWORD DATABASE CA
//
// Prints `ok N` with the answer of `SELECT 6 * 7`, or `error CODE: MESSAGE` when the
// connection or the statement fails.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;

public class ConnectorJTls {
    public static void main(String[] a) {
        String url = "jdbc:mariadb://" + a[0] + ":" + a[1] + "/" + a[4]
                + "?useSSL=true&trustServerCertificate=false&serverSslCert=" + a[5];
        try (Connection c = DriverManager.getConnection(url, a[2], a[3]);
             ResultSet r = c.createStatement().executeQuery("SELECT 6 * 7")) {
            r.next();
            System.out.println("ok " + r.getLong(1));
        } catch (SQLException e) {
            System.out.println("error " + e.getErrorCode() + ": " + e.getMessage());
        }
    }
}
