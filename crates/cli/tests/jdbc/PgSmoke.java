// A JDBC client of carelake's Postgres listener, run by tests/it/pg.rs:
// java -cp classes:/usr/share/java/postgresql.jar PgSmoke URL USER PASSWORD
// It prints what it read, one fact per line, and "jdbc ok" at the end.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class PgSmoke {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("sslmode", "disable");
        // Server-side prepared statements from the first execution on.
        props.setProperty("prepareThreshold", "1");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT patient_id, family_name, birth_date FROM curated.patients WHERE patient_id = ?")) {
                for (int id : new int[] {2, 3}) {
                    ps.setInt(1, id);
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            System.out.println("param " + rs.getInt(1) + " " + rs.getString(2) + " "
                                    + rs.getDate(3).toLocalDate());
                        }
                    }
                }
            }
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT count(*) FROM curated.patients")) {
                rs.next();
                System.out.println("count " + rs.getLong(1));
            }
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product " + meta.getDatabaseProductName() + " " + meta.getDatabaseProductVersion());
            try (ResultSet rs = meta.getTables(null, "curated", "%", null)) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_SCHEM") + " " + rs.getString("TABLE_NAME")
                            + " " + rs.getString("TABLE_TYPE"));
                }
            }
            try (ResultSet rs = meta.getColumns(null, "curated", "patients", "%")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME"));
                }
            }
        }
        System.out.println("jdbc ok");
    }
}
