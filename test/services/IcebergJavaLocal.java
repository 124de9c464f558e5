// Java Iceberg (the reference implementation) on a table in a local folder, for lakeside's
// manifest tests. Run as a single source file on the Iceberg REST fixture's classpath
// (it bundles iceberg-core, Hadoop and Avro):
//
//   java -cp '<fixture lib>/*' IcebergJavaLocal.java <table location> <data file URI> <size>
//
// 1. Loads the table (HadoopTables: metadata/version-hint.text names vN.metadata.json) and
//    plans a scan: Java reads lakeside's manifest list and manifests; prints every live
//    file with its partition, sequence numbers and the plant bounds, decoded by Java.
// 2. Appends one data file (partition ts_day=2026-11-21/plant=plant_java/line=l9) with a
//    fast append: Java writes its own manifest and manifest list (and vN+1.metadata.json).
// Prints one line "RESULT <json>" (other lines are log noise): {"files": [...], "snapshot_id": "...", "manifest_list": "..."}.
import java.nio.ByteBuffer;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.DataFile;
import org.apache.iceberg.DataFiles;
import org.apache.iceberg.FileFormat;
import org.apache.iceberg.FileScanTask;
import org.apache.iceberg.Snapshot;
import org.apache.iceberg.Table;
import org.apache.iceberg.hadoop.HadoopTables;
import org.apache.iceberg.io.CloseableIterable;
import org.apache.iceberg.types.Conversions;
import org.apache.iceberg.types.Types;

public class IcebergJavaLocal {
  private static String quote(Object value) {
    return value == null ? "null" : "\"" + value.toString().replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  private static String text(ByteBuffer bytes) {
    return bytes == null ? null : Conversions.fromByteBuffer(Types.StringType.get(), bytes).toString();
  }

  public static void main(String[] args) throws Exception {
    Table table = new HadoopTables(new Configuration()).load(args[0]);
    StringBuilder out = new StringBuilder("{\"files\":[");
    boolean first = true;
    try (CloseableIterable<FileScanTask> tasks = table.newScan().includeColumnStats().planFiles()) {
      for (FileScanTask task : tasks) {
        DataFile file = task.file();
        StringBuilder partition = new StringBuilder("[");
        for (int i = 0; i < file.partition().size(); i++) {
          if (i > 0) partition.append(',');
          partition.append(quote(file.partition().get(i, Object.class)));
        }
        partition.append(']');
        out.append(first ? "" : ",")
            .append("{\"path\":").append(quote(file.location()))
            .append(",\"record_count\":").append(file.recordCount())
            .append(",\"partition\":").append(partition)
            .append(",\"data_sequence_number\":").append(file.dataSequenceNumber())
            .append(",\"file_sequence_number\":").append(file.fileSequenceNumber())
            .append(",\"plant_lower\":").append(quote(text(file.lowerBounds().get(100000))))
            .append(",\"plant_upper\":").append(quote(text(file.upperBounds().get(100000))))
            .append(",\"split_offsets\":").append(quote(file.splitOffsets()))
            .append('}');
        first = false;
      }
    }
    DataFile appended = DataFiles.builder(table.spec())
        .withPath(args[1])
        .withFileSizeInBytes(Long.parseLong(args[2]))
        .withRecordCount(4)
        .withFormat(FileFormat.PARQUET)
        .withPartitionPath("ts_day=2026-11-21/plant=plant_java/line=l9")
        .build();
    table.newFastAppend().appendFile(appended).commit();
    table.refresh();
    Snapshot snapshot = table.currentSnapshot();
    out.append("],\"snapshot_id\":").append(quote(snapshot.snapshotId()))
        .append(",\"sequence_number\":").append(snapshot.sequenceNumber())
        .append(",\"manifest_list\":").append(quote(snapshot.manifestListLocation()))
        .append('}');
    System.out.println("RESULT " + out);
  }
}
