// A JDBC client signed in as a restricted user, run by tests/it/pg.rs:
// java -cp classes:/usr/share/java/postgresql.jar PgGoverned URL USER PASSWORD
// It prints the rows a prepared statement returns, the SQLSTATE of a refused query, and the
// tables and columns the driver's metadata calls list; "jdbc governed ok" at the end.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class PgGoverned {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("sslmode", "disable");
        props.setProperty("prepareThreshold", "1");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT patient_id, birth_date FROM curated.patients WHERE patient_id >= ? ORDER BY patient_id")) {
                for (int run = 0; run < 2; run++) {
                    ps.setInt(1, 1);
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            System.out.println("row " + run + " " + rs.getInt(1) + " " + rs.getString(2));
                        }
                    }
                }
            }
            for (String sql : new String[] {
                    "SELECT family_name FROM curated.patients",
                    "SELECT * FROM raw.patients",
                    "DELETE FROM curated.patients WHERE patient_id = 2"}) {
                try (Statement st = conn.createStatement()) {
                    st.execute(sql);
                    System.out.println("allowed " + sql);
                } catch (SQLException e) {
                    System.out.println("denied " + e.getSQLState());
                }
            }
            DatabaseMetaData meta = conn.getMetaData();
            try (ResultSet rs = meta.getTables(null, null, "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) {
                    String schema = rs.getString("TABLE_SCHEM");
                    if (schema.equals("raw") || schema.equals("curated") || schema.equals("analytics")) {
                        System.out.println("table " + schema + " " + rs.getString("TABLE_NAME"));
                    }
                }
            }
            try (ResultSet rs = meta.getColumns(null, "curated", "patients", "%")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME"));
                }
            }
        }
        System.out.println("jdbc governed ok");
    }
}
